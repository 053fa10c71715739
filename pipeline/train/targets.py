"""The training targets as one float32 array on disk, memory-mapped: (T, V·N, D), item = view · N + row.

Built once per training run from the teachers' whitened files, block by block (memory: one block),
and memory-mapped read-only-with-copy-on-write by every process that trains on it, so the
operating system shares its pages between DDP ranks on a node and a batch costs one gather.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data.rows import spans
from pipeline.io import atomic_path


def write_targets(path: str | Path, teachers: list, n_rows: int, n_views: int) -> None:
    """Write the (T, V·N, D) target array of `teachers` (one pair per teacher: the reader of its plain
    features over all N rows, and a list of V − 1 readers of its views with their file rows) as .npy."""
    dim = teachers[0][0].dim
    shape = (len(teachers), n_views * n_rows, dim)
    with atomic_path(path) as tmp:
        header = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)  # sparse: rows never written stay zero
        offset = header.offset
        del header
        row_bytes = 4 * dim
        with open(tmp, "r+b") as f:
            for t, (plain, views) in enumerate(teachers):
                base = offset + t * shape[1] * row_bytes
                for start, block in plain.blocks():
                    f.seek(base + start * row_bytes)
                    f.write(memoryview(np.ascontiguousarray(block, dtype=np.float32)))
                for v, (reader, view_rows) in enumerate(views, start=1):
                    for start, block in reader.blocks():
                        rows = view_rows[start:start + len(block)]
                        for lo, hi in spans(rows, len(rows), 1):  # contiguous runs of rows: one write each
                            f.seek(base + (v * n_rows + int(rows[lo])) * row_bytes)
                            f.write(memoryview(np.ascontiguousarray(block[lo:hi], dtype=np.float32)))


def open_targets(path: str | Path) -> np.ndarray:
    """The target array memory-mapped copy-on-write (pages shared, never written back)."""
    return np.load(path, mmap_mode="c")
