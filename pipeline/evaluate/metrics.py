"""Class-protocol retrieval metrics (METHODS §7): mAP, Recall@k and CMC, streamed over query batches.

Rankings come from exact FAISS inner-product search (GPU when present) one query batch at a time,
so a query × gallery matrix never exists whole: a batch holds at most `max_entries` gallery ids.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from pipeline.index.search import build_index

MAX_ENTRIES = 1 << 25  # gallery ids held per query batch (~256 MB of int64)
RECALL_LEVELS = np.linspace(0.0, 1.0, 21)


def ranked_batches(q: np.ndarray, db: np.ndarray, max_entries: int = MAX_ENTRIES) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first query index, (b, n_db) gallery positions best first) for batches of queries."""
    index = build_index(db, "Flat")
    batch = max(1, max_entries // len(db))
    for start in range(0, len(q), batch):
        _, ids = index.search(np.ascontiguousarray(q[start:start + batch], dtype=np.float32), len(db))
        yield start, ids


def average_precision(relevant: np.ndarray, kept: np.ndarray | None = None) -> np.ndarray:
    """Non-interpolated AP per row of a ranked relevance matrix (n_q, n_db); NaN for rows without positives.

    AP = (1/P) Σ_i (i + 1) / (r_i + 1), r_i the 0-based rank of the i-th positive among the kept
    entries (`kept`: False for entries removed from the ranking, e.g. the query itself).
    """
    kept = np.ones_like(relevant, dtype=bool) if kept is None else kept
    relevant = relevant & kept
    kept_rank = np.cumsum(kept, axis=1)  # 1-based rank of each kept entry
    hits = np.cumsum(relevant, axis=1)
    n_pos = relevant.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(relevant, hits / np.maximum(kept_rank, 1), 0.0)
        return np.where(n_pos > 0, precision.sum(axis=1) / n_pos, np.nan)


def interpolated_precision(relevant: np.ndarray, kept: np.ndarray, levels: np.ndarray = RECALL_LEVELS) -> np.ndarray:
    """Per row, the highest precision reached at recall ≥ each level (n_q, n_levels); NaN rows without positives."""
    relevant = relevant & kept
    hits = np.cumsum(relevant, axis=1)
    n_pos = hits[:, -1:]
    precision = hits / np.maximum(np.cumsum(kept, axis=1), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = hits / n_pos
    out = np.stack([np.where(recall >= level, precision, 0.0).max(axis=1) for level in levels], axis=1)
    out[n_pos[:, 0] == 0] = np.nan
    return out


def class_protocol(q: np.ndarray, q_labels: np.ndarray, q_rows: np.ndarray, db: np.ndarray,
                   db_labels: np.ndarray, db_rows: np.ndarray, recall_at: Sequence[int] = (1, 5, 10),
                   q_cameras: np.ndarray | None = None, db_cameras: np.ndarray | None = None,
                   max_entries: int = MAX_ENTRIES) -> dict:
    """mAP and Recall@k (METHODS §7, class protocol); the re-id variant when cameras are given.

    A query's own row is removed from its gallery; with cameras, gallery images of the same label
    taken by the same camera are removed too (re-id protocol; Recall@1 is then CMC rank-1).
    Queries without positives are left out of the mAP and the recalls. `pr_curve` holds the mean
    interpolated precision at recall levels 0, 0.05, …, 1.
    """
    aps, first_hit, curves = [], [], []
    for start, ids in ranked_batches(q, db, max_entries):
        stop = start + len(ids)
        relevant = db_labels[ids] == q_labels[start:stop, None]
        kept = db_rows[ids] != q_rows[start:stop, None]
        if q_cameras is not None and db_cameras is not None:
            kept &= ~(relevant & (db_cameras[ids] == q_cameras[start:stop, None]))
        aps.append(average_precision(relevant, kept))
        curves.append(interpolated_precision(relevant, kept))
        kept_rank = np.cumsum(kept, axis=1)
        first = np.where(relevant & kept, kept_rank, np.iinfo(np.int64).max).min(axis=1)
        first_hit.append(first)
    ap, first = np.concatenate(aps), np.concatenate(first_hit)
    has_pos = ~np.isnan(ap)
    result = {"mAP": float(ap[has_pos].mean()) if has_pos.any() else float("nan"),
              "queries": int(len(q)), "queries_without_positives": int((~has_pos).sum())}
    for k in recall_at:
        result[f"R@{k}"] = float((first[has_pos] <= k).mean()) if has_pos.any() else float("nan")
    curve = np.concatenate(curves)[has_pos]
    result["pr_curve"] = {"recall": RECALL_LEVELS.tolist(),
                          "precision": (curve.mean(axis=0) if len(curve) else np.full(len(RECALL_LEVELS), np.nan)).tolist()}
    return result


def mean_reciprocal_rank(sim: np.ndarray) -> float:
    """Whiten-MTD's MRR diagnostic (METHODS §3): mean over rows of 1 / (1-based rank of the diagonal entry in its row)."""
    rank = (sim > np.diagonal(sim)[:, None]).sum(axis=1) + 1
    return float(np.mean(1.0 / rank))
