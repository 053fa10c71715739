"""Neighbour mining that streams the cached features: memory stays at the index plus one query batch.

Features are read block by block from their HDF5 file, never held whole: the compressed index is
trained on an even sample and filled block by block, and a query batch's shortlist is re-ranked
exactly in one sequential pass over the file (each block scores the candidates that fall in it).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import faiss
import h5py
import numpy as np

from pipeline.index.search import by_similarity, drop_self, new_index, to_gpu_if_available


class RowReader:
    """Reads `rows` of an HDF5 `features` dataset (positions 0..n−1 of those rows), in order, block by block."""

    def __init__(self, path: str | Path, rows: np.ndarray, block: int = 4096):
        self.h5 = h5py.File(path, "r")
        self.dataset = self.h5["features"]
        self.rows, self.block = np.asarray(rows, dtype=np.int64), block
        self.dim = self.dataset.shape[1]

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Features of positions start..stop, read as one contiguous slice of the file."""
        rows = self.rows[start:stop]
        if len(rows) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        span = self.dataset[rows[0]:rows[-1] + 1]
        return np.ascontiguousarray(span[rows - rows[0]], dtype=np.float32)

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(start position, features) of consecutive blocks covering every position."""
        for start in range(0, len(self), self.block):
            yield start, self.read(start, start + self.block)

    def sample(self, n: int) -> np.ndarray:
        """min(n, all) positions' features, evenly spread over the file; memory: the sample and one block."""
        picks = np.unique(np.linspace(0, len(self) - 1, min(n, len(self))).astype(np.int64))
        out = np.empty((len(picks), self.dim), dtype=np.float32)
        for start, feats in self.blocks():
            lo, hi = np.searchsorted(picks, [start, start + len(feats)])
            out[lo:hi] = feats[picks[lo:hi] - start]
        return out

    def close(self) -> None:
        """Release the file."""
        self.h5.close()

    def __enter__(self) -> "RowReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def build_streamed_index(reader: RowReader, factory: str, train_size: int = 65536) -> faiss.Index:
    """A FAISS index (factory string, inner product) trained on an even sample and filled block by block."""
    index = to_gpu_if_available(new_index(reader.dim, factory))
    if not index.is_trained:
        index.train(reader.sample(train_size))
    for _, feats in reader.blocks():
        index.add(feats)
    return index


def rerank_streamed(q: np.ndarray, ids: np.ndarray, reader: RowReader,
                    pairs_per_step: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """rerank_exact without the database in memory: one sequential pass scores each candidate in its block."""
    sims = np.empty(ids.shape, dtype=np.float32)
    flat_ids, flat_sims = ids.ravel(), sims.reshape(-1)
    query_of = np.repeat(np.arange(len(q)), ids.shape[1])
    by_id = np.argsort(flat_ids, kind="stable")
    sorted_ids = flat_ids[by_id]
    for start, feats in reader.blocks():
        lo, hi = np.searchsorted(sorted_ids, [start, start + len(feats)])
        for first in range(lo, hi, pairs_per_step):  # bounded temporaries: pairs_per_step × D floats
            pairs = by_id[first:min(first + pairs_per_step, hi)]
            flat_sims[pairs] = np.einsum("nd,nd->n", q[query_of[pairs]], feats[flat_ids[pairs] - start])
    return by_similarity(sims, ids)


def streamed_neighbours(index: faiss.Index, reader: RowReader, start: int, stop: int, k: int,
                        shortlist: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """neighbours_of for positions start..stop, the database streamed from `reader` for the exact re-rank."""
    q = reader.read(start, stop)
    stop = start + len(q)
    n_candidates = min(max(k, shortlist) + 1, len(reader))
    sims, ids = index.search(q, n_candidates)
    if n_candidates > k + 1:
        sims, ids = rerank_streamed(q, ids, reader)
    return drop_self(sims[:, :k + 1], ids[:, :k + 1], np.arange(start, stop), k)


def exact_neighbours(reader: RowReader, positions: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k ids (self excluded) of the given positions, by brute force over the streamed blocks."""
    q = np.concatenate([reader.read(p, p + 1) for p in positions]) if len(positions) else np.zeros((0, reader.dim))
    best_sims = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(q), 0), dtype=np.int64)
    for start, feats in reader.blocks():
        sims = q @ feats.T
        ids = np.broadcast_to(np.arange(start, start + len(feats)), sims.shape)
        sims = np.where(ids == positions[:, None], -np.inf, sims)  # a row is not its own neighbour
        sims, ids = np.concatenate([best_sims, sims], 1), np.concatenate([best_ids, ids], 1)
        if sims.shape[1] > k:
            keep = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            sims, ids = np.take_along_axis(sims, keep, 1), np.take_along_axis(ids, keep, 1)
        best_sims, best_ids = sims, ids
    return by_similarity(best_sims, best_ids)[1]
