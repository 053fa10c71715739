"""FAISS indexes (inner product on l2-normalised features), exact search and neighbour mining."""
from __future__ import annotations

import logging

import faiss
import numpy as np

from pipeline.errors import RdistillError

log = logging.getLogger(__name__)


def to_gpu_if_available(index: faiss.Index) -> faiss.Index:
    """The index on all GPUs when FAISS sees any; the CPU index otherwise (or if FAISS has no GPU version of it)."""
    if faiss.get_num_gpus() == 0:
        return index
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except (RuntimeError, AttributeError) as exc:
        log.warning("index kept on CPU: %s", exc)
        return index


def build_index(db: np.ndarray, factory: str) -> faiss.Index:
    """Train and fill an index from a FAISS index-factory string (inner-product metric). db: (N, D)."""
    db = np.ascontiguousarray(db, dtype=np.float32)
    try:
        index = faiss.index_factory(db.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise RdistillError(f"mine.index: FAISS cannot build {factory!r} for dimension {db.shape[1]} "
                            f"({str(exc).strip().splitlines()[-1]})") from None
    index = to_gpu_if_available(index)
    if not index.is_trained:
        index.train(db)
    index.add(db)
    return index


def search(index: faiss.Index, q: np.ndarray, k: int, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (similarities, ids) of every query row, in query batches. q: (n_q, D) -> two (n_q, k)."""
    q = np.ascontiguousarray(q, dtype=np.float32)
    sims = np.empty((len(q), k), dtype=np.float32)
    ids = np.empty((len(q), k), dtype=np.int64)
    for start in range(0, len(q), batch):
        sims[start:start + batch], ids[start:start + batch] = index.search(q[start:start + batch], k)
    return sims, ids


def exact_search(db: np.ndarray, q: np.ndarray, k: int, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k of `q` in `db` (FAISS flat index; GPU when present)."""
    return search(build_index(db, "Flat"), q, k, batch)


def drop_self(sims: np.ndarray, ids: np.ndarray, self_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own id from its k+1 results (or the last result when it is absent) -> (n, k)."""
    keep = ids != self_ids[:, None]
    overflow = keep.sum(axis=1) > k  # self not found: drop the weakest result instead
    keep[overflow, -1] = False
    return sims[keep].reshape(len(ids), k), ids[keep].reshape(len(ids), k)


def rerank_exact(q: np.ndarray, db: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Re-order each row's candidate ids by exact inner product with `db`. q: (n, D), ids: (n, c)."""
    sims = np.einsum("nd,ncd->nc", q, db[ids])
    order = np.argsort(-sims, axis=1, kind="stable")
    return np.take_along_axis(sims, order, axis=1), np.take_along_axis(ids, order, axis=1)


def mine_neighbours(feats: np.ndarray, factory: str, k: int, shortlist: int = 0, batch: int = 4096):
    """Top-k neighbours of every row among the other rows, via `factory`; also the exact top-k.

    With shortlist > k, the index proposes `shortlist` candidates that are re-ranked exactly from
    `feats` (a compressed index for the candidates, the cached features for the order).
    Returns (sims, ids, exact_ids), each (N, k); ids index rows of `feats`.
    """
    if k >= len(feats):
        raise RdistillError(f"mine.k: {k} neighbours asked of {len(feats)} training images (need k < N)")
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    index = build_index(feats, factory)
    n_candidates = min(max(k, shortlist) + 1, len(feats))
    sims = np.empty((len(feats), k), dtype=np.float32)
    ids = np.empty((len(feats), k), dtype=np.int64)
    for start in range(0, len(feats), batch):
        q = feats[start:start + batch]
        cand_sims, cand_ids = index.search(q, n_candidates)
        if n_candidates > k + 1:
            cand_sims, cand_ids = rerank_exact(q, feats, cand_ids)
        own = np.arange(start, start + len(q))
        sims[start:start + batch], ids[start:start + batch] = drop_self(
            cand_sims[:, :k + 1], cand_ids[:, :k + 1], own, k)
    _, exact_ids = drop_self(*exact_search(feats, feats, k + 1, batch), np.arange(len(feats)), k)
    return sims, ids, exact_ids


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean fraction of each row's exact top-k found in its approximate top-k."""
    hits = [len(np.intersect1d(a, e)) for a, e in zip(approx_ids, exact_ids)]
    return float(np.mean(hits) / exact_ids.shape[1])
