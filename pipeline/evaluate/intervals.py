"""Uncertainty of retrieval scores: intervals over training seeds and paired bootstraps over queries.

A method's mAP varies with its training seed and with the sample of test queries. The report shows
each student's mean over seeds with a Student-t interval over those seeds, and its difference from a
reference (no_distill, or the whitened teacher) with a percentile interval from a paired bootstrap
over queries (per query, the AP averaged over seeds; queries resampled with replacement, the same
resample for both methods) widened by Welch's interval over the seeds' mAP, since a seed moves all
queries together. Teachers are trained once, so every interval is conditional on them.
"""
from __future__ import annotations

from collections.abc import Iterator

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


BLOCK_DRAWS = 1 << 24  # query positions drawn at a time (128 MiB): 10,000 resamples of 70k queries are 5.6 GB


class QueryResamples:
    """`n_resamples` seeded resamples of `n_queries` query positions drawn with replacement, made block by
    block each time they are used (memory: about `block_draws` positions, not n_resamples × n_queries); every
    use with the same arguments sees the same draws, so every pair of methods is compared on them."""

    def __init__(self, n_queries: int, n_resamples: int = 10_000, seed: int = 0, block_draws: int = BLOCK_DRAWS):
        self.n_queries, self.n_resamples, self.seed = n_queries, n_resamples, seed
        self.rows = max(1, block_draws // max(n_queries, 1))

    def blocks(self) -> Iterator[np.ndarray]:
        """(rows, n_queries) blocks of query positions, n_resamples rows in all."""
        rng = np.random.default_rng(self.seed)
        for start in range(0, self.n_resamples, self.rows):
            yield rng.integers(0, self.n_queries, size=(min(self.rows, self.n_resamples - start), self.n_queries))

    def means(self, per_query: np.ndarray) -> np.ndarray:
        """The mean of `per_query` over each resample: (n_resamples,)."""
        return np.concatenate([per_query[block].mean(axis=1) for block in self.blocks()])


def query_resamples(n_queries: int, n_resamples: int = 10_000, seed: int = 0) -> QueryResamples:
    """Seeded query resamples (the same draws for every pair of methods compared on n_queries queries)."""
    return QueryResamples(n_queries, n_resamples, seed)


def bootstrap_interval(per_query: np.ndarray, resamples: QueryResamples | np.ndarray,
                       confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): the mean of per-query values and the percentile interval of its resampled means
    (`resamples`: QueryResamples, or an explicit (R, n) array of query positions)."""
    means = resamples.means(per_query) if isinstance(resamples, QueryResamples) else per_query[resamples].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(per_query.mean()), float(low), float(high)


def paired_difference(a: np.ndarray, b: np.ndarray, resamples: QueryResamples | np.ndarray,
                      confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(difference of means, low, high) of A − B from per-query scores of both, each (seeds, queries) over the
    same queries in the same order: seeds averaged per query, then the paired bootstrap of the difference."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired scores need the same queries: {a.shape[1]} vs {b.shape[1]}")
    return bootstrap_interval(a.mean(axis=0) - b.mean(axis=0), resamples, confidence)


def seed_and_query_difference(a: np.ndarray, b: np.ndarray, resamples: QueryResamples | np.ndarray,
                              confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(difference of means, low, high) of A − B, each (seeds, queries) over the same queries: the paired query
    bootstrap (paired_difference) widened by the spread of the two methods' per-seed mAP.

    A training seed moves every query of its model together, which resampling queries cannot see. Its
    share is Welch's interval of the difference of the per-seed means, t_{(1+c)/2, ν} · √(s²_A/n_A + s²_B/n_B)
    with ν from Welch–Satterthwaite; the two independent sources add in quadrature on each side of the
    difference: low = d − √(h_seed² + (d − low_q)²), high = d + √(h_seed² + (high_q − d)²). A side with one
    run adds no term: a teacher is trained once and every interval is conditional on it (asymmetric rows
    keep their student's seeds: ν = n_A − 1); with one run on both sides the query bootstrap stands alone.
    """
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    diff, low, high = paired_difference(a, b, resamples, confidence)
    spreads = [(x.mean(axis=1).var(ddof=1) / len(x), len(x) - 1) for x in (a, b) if len(x) > 1]
    variance = sum(v for v, _ in spreads)
    if variance == 0:
        return diff, low, high
    df = variance ** 2 / sum(v ** 2 / dof for v, dof in spreads)
    seed_half = float(stats.t.ppf((1 + confidence) / 2, df) * np.sqrt(variance))
    return diff, diff - float(np.hypot(seed_half, diff - low)), diff + float(np.hypot(seed_half, high - diff))


def excludes_zero(low: float, high: float) -> bool:
    """Whether an interval lies wholly on one side of 0 (a difference the data support)."""
    return bool(low > 0 or high < 0)
