"""HDF5 feature reads in the training loop's access pattern (shuffled batches of rows) vs a plain numpy copy.

The training stage loads a whitened feature file into memory once (read_features) and then gathers
each batch's rows from memory; direct h5py reads per batch are measured beside it for comparison.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import typer

from benchmarks.common import write_result
from pipeline.data.h5 import feature_writer, read_features


def epoch_of_batches(source, order: np.ndarray, batch: int) -> float:
    """Seconds to gather every row once, in shuffled batches, from `source` (array or h5py dataset)."""
    start = time.perf_counter()
    for i in range(0, len(order), batch):
        rows = order[i:i + batch]
        if isinstance(source, np.ndarray):
            source[rows].copy()
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
        loaded = read_features(path).features
        load = time.perf_counter() - start
        memory_epoch = min(epoch_of_batches(loaded, order, batch) for _ in range(3))
        with h5py.File(path) as h5:
            part = order[:h5_batches * batch]
            direct = epoch_of_batches(h5["features"], part, batch) * rows / len(part)
    training = load + epochs * memory_epoch
    figures = {
        "numpy_copy_rows_per_s": rows / numpy_epoch,
        "load_whole_file_s": load,
        "in_memory_rows_per_s": rows / memory_epoch,
        "h5py_direct_rows_per_s": rows / direct,
        "ratio_first_epoch": numpy_epoch / (load + memory_epoch),
        f"ratio_over_{epochs}_epochs": epochs * numpy_epoch / training,
        "ratio_h5py_direct": numpy_epoch / direct,
    }
    write_result("h5_reads", {"rows": rows, "dim": dim, "batch": batch, "epochs": epochs, "chunk_rows": 512,
                              "strategy": "load once with read_features, gather batches in memory"},
                 figures, {f"ratio_over_{epochs}_epochs >= 0.5": figures[f"ratio_over_{epochs}_epochs"] >= 0.5})


if __name__ == "__main__":
    typer.run(main)
