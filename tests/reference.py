"""Reference implementations the tests check production code against: metrics from whole rankings and
relevance matrices (production counts only the ranks of the positives), and a whole-file feature reader
(production reads by rows and blocks)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.h5 import read_arrays
from pipeline.errors import RdistillError
from pipeline.evaluate.metrics import RECALL_LEVELS
from pipeline.evaluate.revisited import SETTINGS, QueryTruth, revisited_scores_from_ranks


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


def mean_reciprocal_rank(sim: np.ndarray) -> float:
    """Whiten-MTD's MRR diagnostic (METHODS §3): mean over rows of 1 / (1-based rank of the diagonal entry in its row)."""
    rank = (sim > np.diagonal(sim)[:, None]).sum(axis=1) + 1
    return float(np.mean(1.0 / rank))


def ranks_in_ranking(ranking: np.ndarray, positives: np.ndarray, ignored: np.ndarray) -> np.ndarray:
    """0-based ranks of the positives in `ranking` (gallery positions, best first) once ignored ones are removed."""
    kept = ranking[~np.isin(ranking, ignored)]
    return np.flatnonzero(np.isin(kept, positives))


def revisited_scores(rankings: Iterable[np.ndarray], truths: Sequence[QueryTruth], ks: Sequence[int] = (1, 5, 10)) -> dict:
    """revisited_scores_from_ranks for whole rankings: one array of gallery positions (best first) per query."""
    ranks = ([ranks_in_ranking(ranking, *truth.split(s)) for s in SETTINGS] for ranking, truth in zip(rankings, truths, strict=True))
    return revisited_scores_from_ranks(ranks, truths, ks)


@dataclass
class FeatureFile:
    """Features read from HDF5: (N, D) float32 array, ids and provenance attributes."""

    features: np.ndarray
    ids: list[str]
    attrs: dict
    views: np.ndarray | None = None  # (V − 1, M, D) views 1.. of the rows in view_rows
    view_rows: np.ndarray | None = None

    def items(self) -> np.ndarray:
        """Features of every item (view · N + row) as one (V · N, D) array; views of rows not in view_rows are zero."""
        if self.views is None:
            return self.features
        n, dim = self.features.shape
        out = np.zeros(((len(self.views) + 1) * n, dim), dtype=np.float32)
        out[:n] = self.features
        for v, view in enumerate(self.views, start=1):
            out[v * n + self.view_rows] = view
        return out


def read_features(path: str | Path) -> FeatureFile:
    """Read a complete feature file; refuses NaN, inf and all-zero rows, and ids that do not match the rows."""
    arrays, attrs = read_arrays(path, ["features", "ids"])
    features = arrays["features"]
    if features.ndim != 2 or len(features) != len(arrays["ids"]):
        raise RdistillError(f"{path}: features of shape {features.shape} for {len(arrays['ids'])} ids")
    bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
    if bad.size:
        raise RdistillError(f"{path}: row {bad[0]} holds NaN or inf")
    zero = np.flatnonzero(~features.any(axis=1))
    if zero.size:
        raise RdistillError(f"{path}: row {zero[0]} is all zeros")
    views = view_rows = None
    if attrs.get("views", 1) > 1:
        extra, _ = read_arrays(path, ["views", "view_rows"])
        views, view_rows = extra["views"], extra["view_rows"]
        if views.shape[1:] != (len(view_rows), features.shape[1]) or not np.isfinite(views).all():
            raise RdistillError(f"{path}: views of shape {views.shape} do not match {len(view_rows)} rows of "
                                f"{features.shape[1]}-d features, or hold NaN/inf")
    return FeatureFile(features, list(arrays["ids"]), attrs, views, view_rows)
