"""Uncertainty of retrieval scores: intervals over training seeds, paired bootstraps over queries, and a
family of differences adjusted for multiplicity.

A method's mAP varies with its training seed and with the sample of test queries. A student's mean over
seeds gets a Student-t interval over its seeds; with several students of one setting their seed variance
is pooled (one variance for all, df = Σ(n_i − 1)), which a handful of seeds per student cannot estimate
alone. A difference between two methods gets a percentile interval from a paired bootstrap over queries
(per query, the AP averaged over seeds; queries resampled with replacement, the same resample for both
methods) widened by a t interval over the seeds' mAP, since a seed moves all queries together; its
two-sided p inverts that interval, and a family of differences is adjusted by Holm's step-down method.
Models trained once (teachers) add no seed term: every interval is conditional on them.

References: Student t (Student 1908) and the pooled two-sample t; Welch–Satterthwaite degrees of freedom
(Welch 1947, Satterthwaite 1946); the percentile bootstrap (Efron & Tibshirani 1993, ch. 13); Holm's
sequentially rejective procedure (Holm 1979, Scand. J. Statist. 6:65–70).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05  # family-wise error rate of the marks
POWER = 0.80  # the power a minimum detectable difference is stated at


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


def pooled_variance(groups: Iterable[np.ndarray]) -> tuple[float, int]:
    """(s²_pooled, df) of several groups' per-seed scores: Σ_i Σ_s (x_is − x̄_i)² / Σ(n_i − 1), df = Σ(n_i − 1).

    Groups of one seed add nothing; with none of two or more, (NaN, 0). Pooling assumes every group shares
    one seed variance (the pooled two-sample Student t's assumption).
    """
    spread = [np.asarray(g, dtype=np.float64) for g in groups]
    spread = [g for g in spread if len(g) > 1]
    df = sum(len(g) - 1 for g in spread)
    if df == 0:
        return float("nan"), 0
    return float(sum(((g - g.mean()) ** 2).sum() for g in spread) / df), df


def seed_half_width(variance: float, df: float, confidence: float = CONFIDENCE) -> float:
    """t_{(1+c)/2, df} · √variance (Student t): the seeds' half-width; 0 when no variance was measured."""
    if not df or df < 1e-12 or not np.isfinite(variance) or variance <= 0:
        return 0.0
    return float(stats.t.ppf((1 + confidence) / 2, df) * np.sqrt(variance))


def pooled_seed_interval(values: np.ndarray, variance: float, df: int,
                         confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high) of one group's per-seed scores with a pooled variance: mean ± t_{(1+c)/2, df} · s_p / √n.

    variance, df: pooled_variance over every group of the setting. Without a measured variance (df = 0),
    low and high are NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if df < 1 or not np.isfinite(variance):
        return mean, float("nan"), float("nan")
    half = seed_half_width(variance / len(values), df, confidence)
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


def resampled_means(per_query: np.ndarray, resamples: QueryResamples | np.ndarray) -> np.ndarray:
    """The mean of `per_query` (Q,) over each resample: (R,) (`resamples`: QueryResamples, or an (R, Q) array of
    query positions)."""
    return resamples.means(per_query) if isinstance(resamples, QueryResamples) else per_query[resamples].mean(axis=1)


def percentile_interval(draws: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(low, high): the (1 − c)/2 and (1 + c)/2 percentiles of bootstrap draws (linear interpolation)."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_interval(per_query: np.ndarray, resamples: QueryResamples | np.ndarray,
                       confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): the mean of per-query values and the percentile interval of its resampled means
    (`resamples`: QueryResamples, or an explicit (R, n) array of query positions)."""
    return (float(per_query.mean()), *percentile_interval(resampled_means(per_query, resamples), confidence))


def binary_scores(rate: float, n: int) -> np.ndarray:
    """n per-query 0/1 scores whose mean is `rate` (e.g. Recall@1 over n queries): round(rate · n) ones.

    The query bootstrap of a mean of 0/1 scores depends only on how many are 1, not on which queries, so a
    stored rate and query count give the same resampled means as the per-query values would.
    """
    hits = int(round(rate * n))
    return np.concatenate([np.ones(hits), np.zeros(n - hits)])


def paired_difference(a: np.ndarray, b: np.ndarray, resamples: QueryResamples | np.ndarray,
                      confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(difference of means, low, high) of A − B from per-query scores of both, each (seeds, queries) over the
    same queries in the same order: seeds averaged per query, then the paired bootstrap of the difference."""
    diff, draws = difference_draws(a, b, resamples)
    return (diff, *percentile_interval(draws, confidence))


def difference_draws(a: np.ndarray, b: np.ndarray,
                     resamples: QueryResamples | np.ndarray) -> tuple[float, np.ndarray]:
    """(A − B, its paired bootstrap draws (R,)): per query, each side's scores (seeds, queries) averaged over seeds."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired scores need the same queries: {a.shape[1]} vs {b.shape[1]}")
    d = a.mean(axis=0) - b.mean(axis=0)
    return float(d.mean()), resampled_means(d, resamples)


def seed_variance(a: np.ndarray, b: np.ndarray, pooled: tuple[float, int] | None = None) -> tuple[float, float]:
    """(variance, df) of the difference of the two sides' per-seed mAP means, from their seeds.

    pooled = (s²_p, df_p): the pooled two-sample Student t, s²_p · (1/n_A + 1/n_B) on df_p. Otherwise each side's
    own seeds, Σ s²_i / n_i on Welch–Satterthwaite's ν = (Σ v_i)² / Σ v_i² / (n_i − 1). A side of one run adds
    nothing (a model trained once: the interval is conditional on it); (0, 0) when nothing is measured.
    a, b: per-query scores (seeds, queries).
    """
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    varying = [len(x) for x in (a, b) if len(x) > 1]
    if pooled is not None:
        variance, df = pooled
        if df < 1 or not varying:
            return 0.0, 0.0
        return float(variance * sum(1 / n for n in varying)), float(df)
    spreads = [(x.mean(axis=1).var(ddof=1) / len(x), len(x) - 1) for x in (a, b) if len(x) > 1]
    variance = sum(v for v, _ in spreads)
    if variance == 0:
        return 0.0, 0.0
    return float(variance), float(variance ** 2 / sum(v ** 2 / dof for v, dof in spreads))


def widened_interval(diff: float, draws: np.ndarray, variance: float, df: float,
                     confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(low, high) of a difference: its query-bootstrap percentile interval widened by the seeds' t half-width,
    the two independent sources added in quadrature on each side:
    low = d − √(h² + (d − low_q)²), high = d + √(h² + (high_q − d)²), h = t_{(1+c)/2, df} · √variance.
    Without a seed term the query interval stands alone."""
    low, high = percentile_interval(draws, confidence)
    half = seed_half_width(variance, df, confidence)
    if half == 0:
        return low, high
    return diff - float(np.hypot(half, diff - low)), diff + float(np.hypot(half, high - diff))


def widened_p_value(diff: float, draws: np.ndarray, variance: float, df: float, tolerance: float = 1e-10) -> float:
    """Two-sided p of "no difference" from the widened interval inverted: 1 − c*, c* the smallest confidence
    whose widened_interval reaches 0 (bisection on c). The level-c interval excludes 0 exactly when p < 1 − c.

    When no confidence below 1 reaches 0 (the query bootstrap alone, every draw on one side) the p is below the
    bootstrap's resolution: 1 / R is returned.
    """
    def reaches(confidence: float) -> bool:
        low, high = widened_interval(diff, draws, variance, df, confidence)
        return low <= 0 <= high

    below, above = 0.0, 1.0 - 1e-12
    if reaches(below):
        return 1.0
    if not reaches(above):
        return 1.0 / len(draws)
    while above - below > tolerance:
        middle = (below + above) / 2
        below, above = (below, middle) if reaches(middle) else (middle, above)
    return float(1 - above)


def seed_and_query_difference(a: np.ndarray, b: np.ndarray, resamples: QueryResamples | np.ndarray,
                              confidence: float = CONFIDENCE,
                              pooled: tuple[float, int] | None = None) -> tuple[float, float, float]:
    """(difference of means, low, high) of A − B, each (seeds, queries) over the same queries: the paired query
    bootstrap (paired_difference) widened by the spread of the two methods' per-seed mAP (widened_interval).

    A training seed moves every query of its model together, which resampling queries cannot see. Its
    share is a t interval of the difference of the per-seed means (seed_variance): with `pooled` = (s²_p, df),
    t_{(1+c)/2, df} · s_p · √(1/n_A + 1/n_B); otherwise Welch's, t_{(1+c)/2, ν} · √(s²_A/n_A + s²_B/n_B) with ν
    from Welch–Satterthwaite. A side with one run adds no term: a teacher is trained once and every interval
    is conditional on it; with one run on both sides the query bootstrap stands alone.
    """
    diff, draws = difference_draws(a, b, resamples)
    return (diff, *widened_interval(diff, draws, *seed_variance(a, b, pooled), confidence))


def seed_and_query_ratio(a: np.ndarray, b: np.ndarray, resamples: QueryResamples | np.ndarray,
                         confidence: float = CONFIDENCE,
                         pooled: tuple[float, int] | None = None) -> tuple[float, float, float]:
    """(ratio of means, low, high) of mean(A) / mean(B), each (seeds, queries) over the same queries.

    Queries: the paired bootstrap of the ratio of the resampled means (the same draws for both). Seeds: by
    the delta method, var(r) ≈ (var(Ā) + r² var(B̄)) / B̄², each side's variance of its mean over seeds as in
    seed_variance (pooled, or its own seeds; a side trained once adds none), on the pooled df (from own seeds,
    the smaller side's). The two are added in quadrature on each side as in widened_interval.
    """
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    pa, pb = a.mean(axis=0), b.mean(axis=0)
    ratio = float(pa.mean() / pb.mean())
    draws = resampled_means(pa, resamples) / resampled_means(pb, resamples)
    none = b[:1]  # one run: no seed term for that side
    va, df_a = seed_variance(a, none, pooled)
    vb, df_b = seed_variance(b, none, pooled)
    variance = (va + ratio ** 2 * vb) / pb.mean() ** 2
    df = min(d for d in (df_a, df_b) if d) if (df_a or df_b) else 0.0
    return (ratio, *widened_interval(ratio, draws, variance, df, confidence))


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979), in the input's order: with p_(1) ≤ … ≤ p_(m),
    p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) · p_(j)); rejecting p̃ ≤ α holds the family-wise error at α."""
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    adjusted = np.empty_like(p)
    adjusted[order] = stepped
    return adjusted


def finite_queries(*arrays: np.ndarray) -> np.ndarray:
    """Queries scored in every (seeds, queries) array (a query without positives has NaN AP and is left out)."""
    return np.logical_and.reduce([np.isfinite(np.atleast_2d(a)).all(axis=0) for a in arrays])


def family_differences(pairs: Sequence[tuple[str, np.ndarray, np.ndarray]],
                       resamples_of: Callable[[int], QueryResamples | np.ndarray],
                       pooled: Mapping[str, tuple[float, int]] | None = None,
                       confidence: float = CONFIDENCE, alpha: float = ALPHA) -> list[dict]:
    """Every difference A − B of one family of comparisons: its widened interval at `confidence`, its two-sided
    p (widened_p_value), Holm's adjusted p over the family (Holm 1979), and whether it is marked.

    pairs: (name, A, B), per-query scores (seeds, queries) of both over the same queries (NaN: a query
    without positives, left out of both). pooled: name → (s²_p, df) for that pair's seed term (the pooled
    Student t); a pair not in it uses its own seeds (Welch–Satterthwaite). resamples_of(n): query resamples.
    Marked: p_holm ≤ alpha, with the seeds' spread measured and A trained with two seeds or more; a difference
    resting on the query bootstrap alone is never marked (it undercovers when seeds move whole models).
    Returns one dict per pair, in order: name, diff, low, high, p, p_holm, marked, excludes_zero, seeds_a,
    seeds_b, df, queries.
    """
    out = []
    for name, a, b in pairs:
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        keep = finite_queries(a, b)
        a, b = a[:, keep], b[:, keep]
        diff, draws = difference_draws(a, b, resamples_of(int(keep.sum())))
        variance, df = seed_variance(a, b, (pooled or {}).get(name))
        low, high = widened_interval(diff, draws, variance, df, confidence)
        out.append({"name": name, "diff": diff, "low": low, "high": high,
                    "p": widened_p_value(diff, draws, variance, df), "excludes_zero": excludes_zero(low, high),
                    "seeds_a": len(a), "seeds_b": len(b), "df": df, "queries": int(keep.sum()),
                    "seeds_measured": bool(variance > 0 and df >= 1 and len(a) > 1)})
    for row, adjusted in zip(out, holm([r["p"] for r in out]) if out else []):
        row["p_holm"] = float(adjusted)
        measured = row.pop("seeds_measured")
        row["marked"] = bool(adjusted <= alpha and measured)
    return out


def detectable_difference(sd: float, df: float, seeds: int, sides: int = 2, alpha: float = ALPHA,
                          power: float = POWER) -> float:
    """Minimum detectable difference of a two-sided t test at level alpha with the given power:
    (t_{1−α/2, df} + t_{power, df}) · s · √(sides / n), n seeds per trained side (sides = 1 against a model
    trained once). NaN without degrees of freedom."""
    if df < 1 or not np.isfinite(sd):
        return float("nan")
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * sd * np.sqrt(sides / seeds))


def seeds_needed(diff: float, sd: float, groups: int, sides: int = 2, alpha: float = ALPHA, power: float = POWER,
                 most: int = 1000) -> int | None:
    """The fewest seeds per side whose detectable_difference is at most |diff|, the pooled df growing as
    groups · (n − 1); None beyond `most`."""
    for n in range(2, most + 1):
        if detectable_difference(sd, groups * (n - 1), n, sides, alpha, power) <= abs(diff):
            return n
    return None


def excludes_zero(low: float, high: float) -> bool:
    """Whether an interval lies wholly on one side of 0 (a difference the data support)."""
    return bool(low > 0 or high < 0)
