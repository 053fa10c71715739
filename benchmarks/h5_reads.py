"""Training's target reads (shuffled batches of rows) vs a plain numpy copy of the same rows.

The train stage writes the targets once per run from the whitened HDF5 file into one .npy file, block
by block (pipeline.train.targets.write_targets), memory-maps it, and gathers each batch's rows with
index_select (pipeline.train.objectives.gather_rows); direct h5py reads per batch are measured beside
it for comparison. The first epoch also pays for writing the file; later epochs read mapped pages.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import typer

from benchmarks.common import write_result
from pipeline.data.h5 import feature_writer
from pipeline.data.rows import FeatureRows
from pipeline.train.objectives import gather_rows
from pipeline.train.targets import open_targets, write_targets


def epoch_of_batches(source, order: np.ndarray, batch: int) -> float:
    """Seconds to gather every row once, in shuffled batches, from `source` (array, tensor or h5py dataset)."""
    start = time.perf_counter()
    for i in range(0, len(order), batch):
        rows = order[i:i + batch]
        if isinstance(source, np.ndarray):
            source[rows].copy()
        elif isinstance(source, torch.Tensor):
            gather_rows(source, torch.from_numpy(rows))
        else:
            source[np.sort(rows)]  # h5py wants increasing indices
    return time.perf_counter() - start


def main(rows: int = 100_000, dim: int = 512, batch: int = 256, epochs: int = 8, h5_batches: int = 40) -> None:
    """Write benchmarks/results/h5_reads.json."""
    import h5py
    rng = np.random.default_rng(0)
    features = rng.standard_normal((rows, dim), dtype=np.float32)
    order = rng.permutation(rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "whitened.h5"
        with feature_writer(path, [str(i) for i in range(rows)], {"teacher": "bench"}, chunk_rows=512) as writer:
            writer.write(np.arange(rows), features)
        numpy_epoch = min(epoch_of_batches(features, order, batch) for _ in range(3))
        start = time.perf_counter()
        with FeatureRows(path) as reader:
            write_targets(Path(tmp) / "targets.npy", [(reader, [])], rows, 1)
        build = time.perf_counter() - start
        targets = torch.from_numpy(open_targets(Path(tmp) / "targets.npy")[0])
        first_epoch = epoch_of_batches(targets, order, batch)
        mapped_epoch = min(epoch_of_batches(targets, order, batch) for _ in range(3))
        with h5py.File(path) as h5:
            part = order[:h5_batches * batch]
            direct = epoch_of_batches(h5["features"], part, batch) * rows / len(part)
    training = build + first_epoch + (epochs - 1) * mapped_epoch
    figures = {
        "numpy_copy_rows_per_s": rows / numpy_epoch,
        "build_target_file_s": build,
        "mapped_rows_per_s": rows / mapped_epoch,
        "h5py_direct_rows_per_s": rows / direct,
        "ratio_per_epoch": numpy_epoch / mapped_epoch,
        "ratio_first_epoch": numpy_epoch / (build + first_epoch),
        f"ratio_over_{epochs}_epochs": epochs * numpy_epoch / training,
        "ratio_h5py_direct": numpy_epoch / direct,
    }
    write_result("h5_reads", {"rows": rows, "dim": dim, "batch": batch, "epochs": epochs, "chunk_rows": 512,
                              "strategy": "target file written once, memory-mapped, batches gathered with index_select"},
                 figures, {"ratio_per_epoch >= 0.5": figures["ratio_per_epoch"] >= 0.5})


if __name__ == "__main__":
    typer.run(main)
