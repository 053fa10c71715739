"""Uncertainty of retrieval scores: intervals over training seeds and paired bootstraps over queries.

A method's mAP varies with its training seed and with the sample of test queries. The report shows
each student's mean over seeds with a Student-t interval over those seeds, and its difference from a
reference (no_distill, or the whitened teacher) with a percentile interval from a paired bootstrap
over queries: per query, the AP averaged over seeds; queries resampled with replacement, the same
resample for both methods. Teachers are trained once, so every interval is conditional on them.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def seed_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high) of per-seed scores: mean ± t_{(1+c)/2, n−1} · s / √n (s: sample standard deviation).

    With one seed there is no spread to measure: low and high are NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def query_resamples(n_queries: int, n_resamples: int = 10_000, seed: int = 0) -> np.ndarray:
    """(n_resamples, n_queries) query positions drawn with replacement, seeded (the same draw for every pair)."""
    return np.random.default_rng(seed).integers(0, n_queries, size=(n_resamples, n_queries))


def bootstrap_interval(per_query: np.ndarray, resamples: np.ndarray,
                       confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): the mean of per-query values and the percentile interval of its resampled means."""
    means = per_query[resamples].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(per_query.mean()), float(low), float(high)


def paired_difference(a: np.ndarray, b: np.ndarray, resamples: np.ndarray,
                      confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(difference of means, low, high) of A − B from per-query scores of both, each (seeds, queries) over the
    same queries in the same order: seeds averaged per query, then the paired bootstrap of the difference."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired scores need the same queries: {a.shape[1]} vs {b.shape[1]}")
    return bootstrap_interval(a.mean(axis=0) - b.mean(axis=0), resamples, confidence)


def excludes_zero(low: float, high: float) -> bool:
    """Whether an interval lies wholly on one side of 0 (a difference the data support)."""
    return bool(low > 0 or high < 0)
