"""Ensemble Mean (EM, Whiten-MTD §3 baseline): several teachers' similarities averaged at test time."""
from __future__ import annotations

import numpy as np


def ensemble_mean_features(features: list[np.ndarray]) -> np.ndarray:
    """Features whose inner products are the mean of the teachers' (l2-normalised) ones: [f_1..f_T] / √T."""
    # float32 like every reader's features: a float64 scale would turn them into float64 (numpy 2 keeps the
    # scalar's precision), and a row's own score kept in float32 would then rank below itself
    return np.concatenate(features, axis=1) / np.float32(np.sqrt(len(features)))


class EnsembleRows:
    """The rows-reader interface (pipeline.data.rows) over several teachers' readers of the same rows,
    each block or gather being `ensemble_mean_features` of theirs."""

    def __init__(self, readers: list):
        self.readers = readers
        self.dim = sum(r.dim for r in readers)

    def __len__(self) -> int:
        return len(self.readers[0])

    def with_rows(self, rows: np.ndarray) -> "EnsembleRows":
        """The ensemble over file rows `rows`."""
        return EnsembleRows([r.with_rows(rows) for r in self.readers])

    def gather(self, positions: np.ndarray) -> np.ndarray:
        """Joint features of any positions."""
        return ensemble_mean_features([r.gather(positions) for r in self.readers])

    def blocks(self, block: int | None = None):
        """(first position, joint features) of consecutive blocks."""
        block = block or min(r.block for r in self.readers)
        for parts in zip(*(r.blocks(block) for r in self.readers)):
            yield parts[0][0], ensemble_mean_features([p for _, p in parts])
