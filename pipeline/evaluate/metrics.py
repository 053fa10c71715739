"""Class-protocol retrieval metrics (revisited Oxford/Paris, Radenović et al., CVPR 2018): mAP, Recall@k and CMC from the ranks of the positives.

The gallery is never ranked whole: pipeline.evaluate.ranks counts, for each positive, the kept
gallery items ahead of it, one query batch at a time within a fixed memory budget.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.data.rows import ArrayRows
from pipeline.evaluate.ranks import BUDGET_BYTES, positive_ranks

RECALL_LEVELS = np.linspace(0.0, 1.0, 21)


def as_rows(features):
    """A rows reader (pipeline.data.rows) for an (N, D) array; readers are returned as they are."""
    return ArrayRows(features) if isinstance(features, np.ndarray) else features


def ap_from_ranks(ranks: np.ndarray) -> float:
    """Non-interpolated AP from the sorted 0-based ranks of all P positives: (1/P) Σ_i (i + 1) / (r_i + 1)."""
    i = np.arange(1, len(ranks) + 1, dtype=np.float64)
    return float(np.sum(i / (ranks + 1)) / len(ranks)) if len(ranks) else float("nan")


def curve_from_ranks(ranks: np.ndarray, levels: np.ndarray = RECALL_LEVELS) -> np.ndarray:
    """Interpolated precision (highest precision at recall ≥ level) from the sorted ranks of all positives."""
    hits = np.arange(1, len(ranks) + 1, dtype=np.float64)
    precision, recall = hits / (ranks + 1), hits / len(ranks)
    return np.array([precision[recall >= level].max(initial=0.0) for level in levels])


def class_positions(db_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted labels, gallery positions in that order): the positions of label L are a slice of the second."""
    order = np.argsort(db_labels, kind="stable")
    return db_labels[order], order


def class_settings(q_labels: np.ndarray, q_rows: np.ndarray, db_labels: np.ndarray, db_rows: np.ndarray,
                   q_cameras: np.ndarray | None = None, db_cameras: np.ndarray | None = None) -> list:
    """Each query's (positives, removed) gallery positions: same label; itself and, with cameras,
    same-label images of its own camera removed (re-id)."""
    sorted_labels, by_label = class_positions(db_labels)
    row_order = np.argsort(db_rows, kind="stable")
    sorted_rows = db_rows[row_order]
    settings = []
    for label, row, i in zip(q_labels, q_rows, range(len(q_labels))):
        lo, hi = np.searchsorted(sorted_labels, label, "left"), np.searchsorted(sorted_labels, label, "right")
        positives = np.sort(by_label[lo:hi])
        a, b = np.searchsorted(sorted_rows, row, "left"), np.searchsorted(sorted_rows, row, "right")
        removed = row_order[a:b]
        if q_cameras is not None and db_cameras is not None:
            removed = np.union1d(removed, positives[db_cameras[positives] == q_cameras[i]])
        settings.append([(positives, removed)])
    return settings


def class_protocol(q: np.ndarray, q_labels: np.ndarray, q_rows: np.ndarray, db,
                   db_labels: np.ndarray, db_rows: np.ndarray, recall_at: Sequence[int] = (1, 5, 10),
                   q_cameras: np.ndarray | None = None, db_cameras: np.ndarray | None = None,
                   budget_bytes: int = BUDGET_BYTES) -> dict:
    """mAP and Recall@k (revisited Oxford/Paris, Radenović et al., CVPR 2018, class protocol); the re-id variant when cameras are given.

    q: (n_q, D) query features; db: the gallery, an (n_db, D) array or a rows reader. A query's own
    row is removed from its gallery; with cameras, gallery images of the same label taken by the
    same camera are removed too (re-id protocol; Recall@1 is then CMC rank-1). Queries without
    positives are left out of the mAP and the recalls. `pr_curve` holds the mean interpolated
    precision at recall levels 0, 0.05, …, 1; `per_query_ap` every query's AP (NaN without positives).
    """
    settings = class_settings(q_labels, q_rows, db_labels, db_rows, q_cameras, db_cameras)
    ranks = [r[0] for r in positive_ranks(q, as_rows(db), settings, budget_bytes)]
    has_pos = np.array([len(r) > 0 for r in ranks], dtype=bool)
    kept = [r for r in ranks if len(r)]
    per_query = np.array([ap_from_ranks(r) for r in ranks], dtype=np.float64)  # NaN without positives
    result = {"mAP": float(np.nanmean(per_query)) if kept else float("nan"),
              "queries": int(len(q)), "queries_without_positives": int((~has_pos).sum()),
              "per_query_ap": per_query}
    first = np.array([r[0] + 1 for r in kept])  # 1-based rank of the first correct result (CMC)
    for k in recall_at:
        result[f"R@{k}"] = float((first <= k).mean()) if kept else float("nan")
    curve = np.array([curve_from_ranks(r) for r in kept]).reshape(len(kept), len(RECALL_LEVELS))
    result["pr_curve"] = {"recall": RECALL_LEVELS.tolist(),
                          "precision": (curve.mean(axis=0) if len(curve) else np.full(len(RECALL_LEVELS), np.nan)).tolist()}
    return result


def view_mrr(plain, views, sample: int = 1000, budget_bytes: int = BUDGET_BYTES) -> float:
    """Whiten-MTD's MRR diagnostic (Whiten-MTD) without the M × M matrix: for an even sample of up to
    `sample` rows i, the rank of view i among all views by similarity to plain image i.

    plain, views: rows readers of the same M rows (plain images and one augmented view of each).
    Two passes over the views in blocks of budget_bytes of similarities: the first takes each
    sampled row's own similarity from its block, the second counts the views that beat it; both
    compute the same products, so a row's own view is never counted against it. Time: O(sample · M).
    """
    picks = np.unique(np.linspace(0, len(plain) - 1, min(sample, len(plain))).astype(np.int64))
    q = plain.gather(picks)
    block = max(1, budget_bytes // (4 * len(picks)))
    own = np.empty(len(picks), dtype=q.dtype)  # the products' own precision: a rounded own score could rank below itself
    for start, feats in views.blocks(block):
        inside = np.flatnonzero((picks >= start) & (picks < start + len(feats)))
        if len(inside):
            own[inside] = (q @ feats.T)[inside, picks[inside] - start]
    ahead = np.zeros(len(picks), dtype=np.int64)
    for _, feats in views.blocks(block):
        ahead += ((q @ feats.T) > own[:, None]).sum(axis=1)
    return float(np.mean(1.0 / (ahead + 1)))


