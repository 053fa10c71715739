"""The training targets as one float32 array on disk, memory-mapped: (T, V·N, D), item = view · N + row.

Built once per training run from the teachers' whitened files, block by block (memory: one block),
and memory-mapped read-only-with-copy-on-write by every process that trains on it, so the
operating system shares its pages between DDP ranks on a node and a batch costs one gather.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import h5py
import numpy as np
import torch

from pipeline import layout
from pipeline.data.h5 import read_arrays
from pipeline.data.rows import spans
from pipeline.distributed import main_first
from pipeline.errors import RdistillError
from pipeline.io import atomic_path
from pipeline.losses.whiten_mtd import fused_nearest
from pipeline.provenance import open_checked_features, require_match
from pipeline.train.objectives import CachedTargets

NEIGHBOUR_BLOCK = 65536  # rows of mined neighbours read at a time
PARTNER_BLOCK = 16384  # anchors whose partners are chosen at a time (memory: block × candidates × T × D floats)


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


def check_alike(files: list) -> None:
    """Refuse teachers' whitened files that cannot be stacked: another dimension or number of views."""
    first = files[0]
    for f in files[1:]:
        if f.dim != first.dim or f.n_views != first.n_views:
            raise RdistillError(f"{f.path}: {f.dim}-d features with {f.n_views} views, but {first.path} has "
                                f"{first.dim}-d with {first.n_views} (whiten.n_components and extract.views must agree)")


def teacher_targets(files: list, n_rows: int) -> list:
    """write_targets' input for whitened-feature readers over all n_rows list rows (one per teacher)."""
    check_alike(files)
    for f in files:
        if len(f) != n_rows:
            raise RdistillError(f"{f.path}: {len(f)} rows for a list of {n_rows}")
    return [(f, [(f.views_plane(v), f.view_rows()) for v in range(1, f.n_views)]) for f in files]


def read_neighbours(path: str | Path, n_rows: int, expected: dict) -> np.ndarray:
    """(N, K) mined neighbour rows of a neighbours file, −1 for rows that were not mined, read block by
    block; refuses a file whose provenance differs from `expected` (attribute -> value)."""
    arrays, attrs = read_arrays(path, ["rows"])
    for key, value in expected.items():
        require_match(path, attrs, key, value)
    rows = arrays["rows"]
    with h5py.File(path, "r") as h5:  # the file's (M, K) indices never sit beside the result
        indices = h5["indices"]
        neighbours = np.full((n_rows, indices.shape[1]), -1, dtype=np.int64)
        for start in range(0, len(rows), NEIGHBOUR_BLOCK):
            neighbours[rows[start:start + NEIGHBOUR_BLOCK]] = indices[start:start + NEIGHBOUR_BLOCK]
    return neighbours


def pair_partners(table: torch.Tensor, rows: np.ndarray, candidates: np.ndarray, rule: str = "mean",
                  generator: torch.Generator | None = None, block: int = PARTNER_BLOCK) -> np.ndarray:
    """Each training row's positive partner, as a position in `rows`: among its candidate list rows
    (n, C; −1 none), the one with the highest similarity over the teachers' plain features fused by
    `rule` (table: (T, ≥N, D), item = row for view 0; pipeline.losses.whiten_mtd.fused_nearest), block by block."""
    partners = np.empty(len(rows), dtype=np.int64)
    for start in range(0, len(rows), block):
        anchors, cand = rows[start:start + block], candidates[start:start + block]
        valid = cand >= 0
        lonely = np.flatnonzero(~valid.any(axis=1))
        if len(lonely):
            raise RdistillError(f"training row {anchors[lonely[0]]} has no mined neighbour to pair with")
        picked = torch.index_select(table, 1, torch.from_numpy(np.where(valid, cand, anchors[:, None]).ravel()))
        best = fused_nearest(torch.index_select(table, 1, torch.from_numpy(anchors)),
                             picked.reshape(len(table), *cand.shape, table.shape[-1]), torch.from_numpy(valid),
                             rule, generator)
        partners[start:start + len(anchors)] = np.searchsorted(rows, cand[np.arange(len(cand)), best.numpy()])
    return partners


def load_neighbours(teacher: str, list_sha: str, weights_sha: str, n_rows: int) -> np.ndarray:
    """(N, K) mined neighbour rows of a teacher, −1 for rows that were not mined."""
    return read_neighbours(layout.neighbours(teacher), n_rows, {"list_sha256": list_sha, "weights_sha256": weights_sha})


def load_targets(teachers: list[str], list_sha: str, n_rows: int, n_classes: int, path: Path) -> tuple[CachedTargets, dict]:
    """Cached whitened features of every item by each teacher, memory-mapped from one target file at `path`
    (written here from the teachers' whitened files when absent), and the first teacher's neighbours."""
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open_checked_features(layout.whitened_features(t), list_sha, t)) for t in teachers]
        attrs = files[0].attrs
        sources = teacher_targets(files, n_rows)
        main_first(lambda: None if path.is_file() else write_targets(path, sources, n_rows, files[0].n_views))
    neighbours = load_neighbours(teachers[0], list_sha, attrs["weights_sha256"], n_rows)
    stacked = torch.from_numpy(open_targets(path))
    return CachedTargets(stacked, torch.from_numpy(neighbours), n_classes, stacked.shape[-1], attrs["weights_sha256"]), attrs


def partners_of(mode: str, targets: CachedTargets, teachers: list[str], teacher_shas: list[str], list_sha: str,
                rows: np.ndarray, fusion: str, seed: int) -> np.ndarray | None:
    """For pairs from mined neighbours: each training row's partner (a position in `rows`) among every
    teacher's few nearest mined neighbours, by the teachers' similarities fused as the method fuses them
    (teacher_shas: each teacher's weights, from its whitened file); None for other pairings."""
    if mode != "neighbours":
        return None
    candidates = [targets.neighbours.numpy()]
    for t, weights_sha in zip(teachers[1:], teacher_shas[1:]):
        candidates.append(load_neighbours(t, list_sha, weights_sha, targets.n_rows))
    width = min(5, *(c.shape[1] for c in candidates))  # each teacher's few nearest
    return pair_partners(targets.teachers, rows, np.concatenate([c[rows, :width] for c in candidates], axis=1),
                         fusion, torch.Generator().manual_seed(seed))
