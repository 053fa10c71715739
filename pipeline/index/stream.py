"""Neighbour mining from a rows reader (pipeline.data.rows): the index is trained on an even sample
and filled block by block; exact neighbours of sampled rows are found by brute force over the blocks.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import faiss
import numpy as np
from tqdm import tqdm

from pipeline.index.search import by_similarity, new_index, to_gpu_if_available
from pipeline.scratch import ChunkStore

log = logging.getLogger(__name__)


def build_streamed_index(reader, factory: str, train_size: int = 65536) -> faiss.Index:
    """A FAISS index (factory string, inner product) trained on an even sample and filled block by block.

    IVF indexes train on at least 40 rows per list (FAISS's k-means wants 39 or more).
    """
    cpu_index = new_index(reader.dim, factory)
    try:  # read on the CPU index: FAISS cannot find the IVF part of a GPU index or of replicas over GPUs
        train_size = max(train_size, 40 * faiss.extract_index_ivf(cpu_index).nlist)
    except RuntimeError:
        pass  # not an IVF index
    index = to_gpu_if_available(cpu_index)
    if not index.is_trained:
        index.train(reader.sample(train_size))
    for _, feats in reader.blocks():
        index.add(feats)
    return index


def exact_neighbours(reader, positions: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k ids (self excluded) of the given positions, by brute force over the reader's blocks."""
    return exact_top_k(reader, positions, k)[1]


def exact_top_k(reader, positions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k (sims, ids), self excluded, of the given positions, by brute force over the reader's blocks."""
    q = reader.gather(positions) if len(positions) else np.zeros((0, reader.dim), dtype=np.float32)
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
    return by_similarity(best_sims, best_ids)


def neighbours_in_batches(store: ChunkStore, n: int, k: int, batch_size: int,
                          search: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
                          desc: str) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) float32 similarities and int32 positions from search(start, stop) over query batches.

    Each finished batch is kept in `store`, so a killed run resumes with the batches left; the result
    is assembled chunk by chunk into its two arrays.
    """
    starts = range(0, n, batch_size)
    done = store.done()
    pending = [b for b in range(len(starts)) if b not in done]
    log.info("%s: %d of %d query batches already done", desc, len(starts) - len(pending), len(starts))
    for b in tqdm(pending, desc=desc, unit="batch"):
        sims, ids = search(starts[b], min(starts[b] + batch_size, n))
        store.save(b, {"similarities": sims, "ids": ids.astype(np.int32)})
    sims = np.empty((n, k), dtype=np.float32)
    ids = np.empty((n, k), dtype=np.int32)
    for b, start in enumerate(starts):
        part = store.load(b, ["similarities", "ids"])
        sims[start:start + len(part["ids"])] = part["similarities"]
        ids[start:start + len(part["ids"])] = part["ids"]
    return sims, ids
