"""Class-protocol retrieval metrics (METHODS §7): mAP and Recall@k over ranked galleries."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.index.search import exact_search


def average_precision(matches: np.ndarray) -> np.ndarray:
    """Non-interpolated AP of each row of a ranked 0/1 relevance matrix (n_q, n_g); NaN without positives.

    AP = (1/P) Σ_i (i + 1) / (r_i + 1), r_i the 0-based rank of the i-th positive.
    """
    matches = matches.astype(np.float64)
    hits = np.cumsum(matches, axis=1)
    precision = hits / np.arange(1, matches.shape[1] + 1)
    n_pos = matches.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_pos > 0, (precision * matches).sum(axis=1) / n_pos, np.nan)


def ranked_matches(q: np.ndarray, q_labels: np.ndarray, q_rows: np.ndarray, db: np.ndarray,
                   db_labels: np.ndarray, db_rows: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Relevance (n_q, n_db) of each query's exact inner-product ranking.

    The query's own row, when it is in the gallery, is removed and the row padded with a trailing
    non-match (which changes neither AP nor Recall@k).
    """
    out = np.zeros((len(q), len(db)), dtype=bool)
    for start in range(0, len(q), batch):
        stop = start + batch
        _, ids = exact_search(db, q[start:stop], k=len(db))
        not_self = db_rows[ids] != q_rows[start:stop, None]
        relevant = db_labels[ids] == q_labels[start:stop, None]
        for i in range(len(ids)):
            kept = relevant[i][not_self[i]]
            out[start + i, :len(kept)] = kept
    return out


def class_protocol(q: np.ndarray, q_labels: np.ndarray, q_rows: np.ndarray, db: np.ndarray,
                   db_labels: np.ndarray, db_rows: np.ndarray, recall_at: Sequence[int] = (1, 5, 10)) -> dict:
    """mAP and Recall@k (METHODS §7, class protocol); queries without positives are left out of the mAP."""
    matches = ranked_matches(q, q_labels, q_rows, db, db_labels, db_rows)
    ap = average_precision(matches)
    result = {"mAP": float(np.nanmean(ap)), "queries": int(len(q)), "queries_without_positives": int(np.isnan(ap).sum())}
    for k in recall_at:
        result[f"R@{k}"] = float(matches[:, :k].any(axis=1).mean())
    return result
