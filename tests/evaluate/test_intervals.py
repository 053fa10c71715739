"""Intervals over seeds and paired bootstraps over queries, against hand computations and by calibration.

Calibration bands are binomial: with N seeded trials and a true rate r, the count lies within
N·r ± 4·√(N·r·(1 − r)) but for a chance below 1e-4, so a band that excludes a wrong rate by more than that
fails wrong code and passes right code with the fixed seeds here.
"""
import numpy as np
import pytest
from scipy import stats

from pipeline.evaluate.intervals import (bootstrap_interval, detectable_difference, excludes_zero, family_differences,
                                         holm, paired_difference, pooled_seed_interval, pooled_variance,
                                         query_resamples, seed_and_query_difference, seed_and_query_ratio,
                                         seed_interval, seeds_needed, widened_p_value)


def binomial_band(trials: int, rate: float, sds: float = 4.0) -> tuple[float, float]:
    """The counts a rate gives in `trials` trials but for a chance below about 1e-4: N·r ± 4 binomial SDs."""
    half = sds * np.sqrt(trials * rate * (1 - rate))
    return trials * rate - half, trials * rate + half


def test_seed_interval_is_the_student_t_interval_worked_by_hand():
    # mean 0.9, s = 0.1, t_{0.975, 2} = 4.302653: half-width 4.302653 · 0.1 / √3 = 0.248414
    mean, low, high = seed_interval([0.8, 0.9, 1.0])
    assert mean == pytest.approx(0.9) and low == pytest.approx(0.9 - 0.248414, abs=1e-6)
    assert high == pytest.approx(0.9 + 0.248414, abs=1e-6)
    # at confidence 0.8: t_{0.9, 2} = 1.885618 → 0.108866
    assert seed_interval([0.8, 0.9, 1.0], 0.8)[1:] == pytest.approx((0.9 - 0.108866, 0.9 + 0.108866), abs=1e-6)
    mean, low, high = seed_interval([0.7])
    assert mean == 0.7 and np.isnan(low) and np.isnan(high)  # one seed: no spread to measure


def test_bootstrap_interval_over_every_resample_of_two_queries_worked_by_hand():
    # Resamples of d = [1, −1]: (1,1) → 1, (1,−1) → 0, (−1,1) → 0, (−1,−1) → −1; sorted [−1, 0, 0, 1].
    # Linear percentiles: 2.5 % at position 0.075 → −1 + 0.075 = −0.925; 97.5 % at 2.925 → 0.925.
    every = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    mean, low, high = bootstrap_interval(np.array([1.0, -1.0]), every)
    assert (mean, low, high) == pytest.approx((0.0, -0.925, 0.925))


def test_paired_difference_averages_seeds_per_query_before_resampling():
    a = np.array([[0.5, 1.0, 0.0], [0.7, 0.8, 0.2]])  # two seeds, three queries: per query 0.6, 0.9, 0.1
    b = np.array([[0.5, 0.5, 0.5]])
    every = np.array(np.meshgrid(*[range(3)] * 3)).reshape(3, -1).T  # all 27 resamples
    diff, low, high = paired_difference(a, b, every)
    d = np.array([0.1, 0.4, -0.4])
    means = np.sort(d[every].mean(axis=1))
    assert diff == pytest.approx(0.1 / 3) and low == pytest.approx(np.percentile(means, 2.5))
    # by hand: the lowest mean is −0.4 (all three draws the third query), the next (−0.4 − 0.4 + 0.1) / 3;
    # the 2.5 % point sits at position 0.025 · 26 = 0.65 between them
    assert low == pytest.approx(-0.4 + 0.65 * ((-0.4 - 0.4 + 0.1) / 3 + 0.4))
    with pytest.raises(ValueError, match="same queries"):
        paired_difference(a, b[:, :2], every)


def test_resamples_are_seeded_and_drawn_in_blocks_of_bounded_size():
    from pipeline.evaluate.intervals import QueryResamples

    x = np.random.default_rng(0).random(50)
    assert np.array_equal(query_resamples(50, 100, seed=3).means(x), query_resamples(50, 100, seed=3).means(x))
    assert not np.array_equal(query_resamples(50, 100, seed=3).means(x), query_resamples(50, 100, seed=4).means(x))
    small = QueryResamples(50, 100, seed=3, block_draws=7 * 50)  # 7 resamples a block, the last one short
    blocks = list(small.blocks())
    assert [len(b) for b in blocks] == [7] * 14 + [2] and all(b.shape[1] == 50 for b in blocks)
    drawn = np.concatenate(blocks)
    assert np.array_equal(small.means(x), x[drawn].mean(axis=1))  # each mean over its own resample
    assert drawn.min() == 0 and drawn.max() == 49  # positions with replacement over all queries
    # a bootstrap of the mean: centred on the mean, spread as the standard error
    means = QueryResamples(50, 20_000, seed=5, block_draws=1000).means(x)
    assert means.mean() == pytest.approx(x.mean(), abs=3 * x.std() / np.sqrt(50 * 20_000) * 10)
    assert means.std() == pytest.approx(x.std() / np.sqrt(50), rel=0.05)


def synthetic_scores(rng, shift: float, queries: int = 200, seeds: int = 3):
    """Per-query AP of two methods on the same queries: a shared query difficulty, seed noise and query noise."""
    difficulty = rng.beta(2, 2, queries)
    a = np.clip(difficulty + shift + 0.15 * rng.standard_normal((seeds, queries)), 0, 1)
    b = np.clip(difficulty + 0.15 * rng.standard_normal((seeds, queries)), 0, 1)
    return a, b


def test_the_95_percent_interval_holds_a_null_difference_about_95_times_in_100():
    rng = np.random.default_rng(0)
    resamples = query_resamples(200, 2000, seed=1)
    held = sum(not excludes_zero(*paired_difference(*synthetic_scores(rng, 0.0), resamples)[1:]) for _ in range(200))
    low, high = binomial_band(200, 0.95)
    assert low <= held <= high  # no seed effect here: the query bootstrap alone is right


def test_a_real_difference_is_excluded_from_zero():
    rng = np.random.default_rng(1)
    resamples = query_resamples(200, 2000, seed=1)
    diff, low, high = paired_difference(*synthetic_scores(rng, 0.05), resamples)
    assert low > 0 and excludes_zero(low, high) and diff == pytest.approx(0.05, abs=0.02)


def test_seeds_widen_the_difference_interval_by_the_welch_interval_worked_by_hand():
    # A: seeds' mAP 0.7, 0.8, 0.9 (s² = 0.01); B: 0.5, 0.5, 0.6 (s² = 1/300); two queries each
    a = np.array([[0.6, 0.8], [0.7, 0.9], [0.8, 1.0]])
    b = np.array([[0.4, 0.6], [0.5, 0.5], [0.5, 0.7]])
    every = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    # per query, seeds averaged: A 0.7, 0.9; B 0.4667, 0.6; d = 0.2333, 0.3: resampled means 0.2333, 0.2667,
    # 0.2667, 0.3 -> 2.5 % at 0.2333 + 0.075 · 0.0333, 97.5 % at 0.2667 + 0.925 · 0.0333
    q_low, q_high = 0.7 / 3 + 0.075 / 30, 0.8 / 3 + 0.925 / 30
    va, vb = 0.01 / 3, 1 / 900  # variance of each mean over 3 seeds
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)  # Welch–Satterthwaite: 3.2
    seed_half = stats.t.ppf(0.975, df) * np.sqrt(va + vb)
    diff = 0.8 - 8 / 15
    got = seed_and_query_difference(a, b, every)
    assert got == pytest.approx((diff, diff - np.hypot(seed_half, diff - q_low), diff + np.hypot(seed_half, q_high - diff)))
    assert paired_difference(a[:1], b[:1], every) == seed_and_query_difference(a[:1], b[:1], every)  # one seed each
    # against a teacher (one run): the student's seeds alone, t with 2 degrees of freedom
    teacher = b[:1]
    diff, q_low, q_high = paired_difference(a, teacher, every)
    half = stats.t.ppf(0.975, 2) * np.sqrt(va)
    assert seed_and_query_difference(a, teacher, every) == pytest.approx(
        (diff, diff - np.hypot(half, diff - q_low), diff + np.hypot(half, q_high - diff)))


def seed_shifted_scores(rng, shift: float, queries: int = 200, seeds: int = 3):
    """Per-query AP of two methods whose training seeds move every query together (a seed's whole model is
    better or worse), beside per-query noise: what training seeds do to retrieval scores."""
    difficulty = rng.beta(2, 2, queries)

    def method(offset):
        per_seed = 0.03 * rng.standard_normal((seeds, 1))
        return np.clip(difficulty + offset + per_seed + 0.1 * rng.standard_normal((seeds, queries)), 0, 1)
    return method(shift), method(0.0)


def test_with_seed_shifts_the_interval_holds_a_null_difference_where_queries_alone_do_not():
    rng = np.random.default_rng(2)
    resamples = query_resamples(200, 1000, seed=1)
    trials = [seed_shifted_scores(rng, 0.0) for _ in range(200)]
    held = sum(not excludes_zero(*seed_and_query_difference(a, b, resamples)[1:]) for a, b in trials)
    pooled = sum(not excludes_zero(*seed_and_query_difference(
        a, b, resamples, pooled=pooled_variance([a.mean(axis=1), b.mean(axis=1)]))[1:]) for a, b in trials)
    queries_only = sum(not excludes_zero(*paired_difference(a, b, resamples)[1:]) for a, b in trials)
    low, high = binomial_band(200, 0.95)
    assert low <= held <= high  # 193 of 200 (Welch's df make it somewhat conservative)
    assert low <= pooled <= high  # 189 of 200, the two methods' seeds pooled on 4 df
    assert queries_only < low  # 58 of 200: the query bootstrap alone claims a difference in most of them
    diff, low, high = seed_and_query_difference(*seed_shifted_scores(np.random.default_rng(3), 0.15), resamples)
    assert low > 0 and diff == pytest.approx(0.15, abs=0.06)


# Pooled seed variance (Student t on Σ(n_i − 1) degrees of freedom)

def test_pooled_variance_and_row_interval_worked_by_hand():
    # sums of squares: [0.8, 0.9, 1.0] 0.02 on 2 df, [0.5, 0.7] 0.02 on 1 df, [0.6] nothing: s² = 0.04 / 3 on 3 df
    variance, df = pooled_variance([np.array([0.8, 0.9, 1.0]), np.array([0.5, 0.7]), np.array([0.6])])
    assert (variance, df) == (pytest.approx(0.04 / 3), 3)
    assert np.isnan(pooled_variance([np.array([0.6])])[0]) and pooled_variance([np.array([0.6])])[1] == 0
    # the first group's row: t_{0.975, 3} = 3.182446 · √(0.04/3 / 3) = 3.182446 · 0.0666667 = 0.212163
    mean, low, high = pooled_seed_interval(np.array([0.8, 0.9, 1.0]), variance, df)
    assert (mean, low, high) == pytest.approx((0.9, 0.9 - 0.212163, 0.9 + 0.212163), abs=1e-6)
    # its own-t interval (seed_interval) is wider: 4.302653 · 0.1 / √3 = 0.248414; pooling shares the df
    assert seed_interval([0.8, 0.9, 1.0])[1] == pytest.approx(0.9 - 0.248414, abs=1e-6)
    # at confidence 0.8: t_{0.9, 3} = 1.637744 → 0.109183
    assert pooled_seed_interval(np.array([0.8, 0.9, 1.0]), variance, df, 0.8)[1:] == pytest.approx(
        (0.9 - 0.109183, 0.9 + 0.109183), abs=1e-6)
    assert np.isnan(pooled_seed_interval(np.array([0.7]), float("nan"), 0)[1])  # nothing measured: no interval


def test_the_pooled_row_interval_covers_the_seed_mean_at_its_confidence():
    # 10 students × 3 seeds with one seed SD: the row interval is an exact t interval on 20 df, so its coverage
    # is the confidence itself; the band is binomial (module docstring)
    rng = np.random.default_rng(11)
    trials, truth = 3000, np.linspace(0.5, 0.9, 10)[:, None]
    per_seed = truth + 0.03 * rng.standard_normal((trials, 10, 3))
    for confidence in (0.95, 0.8):
        held = 0
        for groups in per_seed:
            _, low, high = pooled_seed_interval(groups[0], *pooled_variance(groups), confidence)
            held += low <= truth[0, 0] <= high
        band = binomial_band(trials, confidence)
        assert band[0] <= held <= band[1], (confidence, held)


# The widened difference: a skewed case by hand, its confidence, pooling and its p

def skewed_pair():
    """Three queries, A over three seeds, B trained once: per query the seeds' mean difference is 0, 0, 0.9.
    Over the 27 resamples of three queries the mean difference is 0 (8 of them), 0.3 (12), 0.6 (6), 0.9 (1)."""
    a = np.array([[0.5, 0.5, 1.4]]) + np.array([[-0.01], [0.0], [0.01]])
    b = np.array([[0.5, 0.5, 0.5]])
    every = np.array(np.meshgrid(*[range(3)] * 3)).reshape(3, -1).T
    return a, b, every


def test_a_skewed_difference_is_widened_side_by_side_worked_by_hand():
    a, b, every = skewed_pair()
    # sorted resampled means: positions 0–7 are 0, 8–19 0.3, 20–25 0.6, 26 0.9.
    # 95 %: 2.5 % at position 0.65 → 0; 97.5 % at 25.35 → 0.6 + 0.35 · 0.3 = 0.705 (skewed: 0.3 below d, 0.405 above)
    assert paired_difference(a, b, every) == pytest.approx((0.3, 0.0, 0.705))
    # pooled s² = 0.0012 on 4 df, A's 3 seeds, B once: seed variance 0.0004, h = t_{0.975, 4} · 0.02 = 0.0555289
    h = 2.7764451 * 0.02
    got = seed_and_query_difference(a, b, every, pooled=(0.0012, 4))
    assert got == pytest.approx((0.3, 0.3 - np.hypot(h, 0.3), 0.3 + np.hypot(h, 0.405)), abs=1e-6)
    # 80 %: 10 % at 2.6 → 0, 90 % at 23.4 → 0.6; h = t_{0.9, 4} · 0.02 = 1.5332063 · 0.02
    h = 1.5332063 * 0.02
    got = seed_and_query_difference(a, b, every, 0.8, pooled=(0.0012, 4))
    assert got == pytest.approx((0.3, 0.3 - np.hypot(h, 0.3), 0.3 + np.hypot(h, 0.3)), abs=1e-6)
    # Welch on A's own seeds instead: means 0.79, 0.8, 0.81, s² = 1e-4, variance 1e-4 / 3 on 2 df
    h = 4.3026527 * np.sqrt(1e-4 / 3)
    assert seed_and_query_difference(a, b, every) == pytest.approx(
        (0.3, 0.3 - np.hypot(h, 0.3), 0.3 + np.hypot(h, 0.405)), abs=1e-6)


def test_both_sides_trained_with_seeds_share_the_pooled_variance():
    # s²_p (1/3 + 1/2) = 0.0012 · 5/6 = 0.001 on the pooled 4 df; per query d = 0.1 everywhere
    a = np.full((3, 4), 0.6) + np.array([[-0.01], [0.0], [0.01]])
    b = np.full((2, 4), 0.5) + np.array([[-0.02], [0.02]])
    diff, low, high = seed_and_query_difference(a, b, np.zeros((10, 4), dtype=int), pooled=(0.0012, 4))
    h = 2.7764451 * np.sqrt(0.001)
    assert (diff, low, high) == pytest.approx((0.1, 0.1 - h, 0.1 + h), abs=1e-6)


def test_the_ratio_to_a_teacher_is_a_paired_bootstrap_widened_by_the_students_seeds():
    a = np.array([[0.6, 0.8]]) + np.array([[-0.01], [0.0], [0.01]])  # per query 0.6, 0.8: mean 0.7
    b = np.array([[0.8, 0.8]])  # a teacher trained once: mean 0.8
    every = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    # resampled ratios 0.75, 0.875, 0.875, 1.0: 2.5 % 0.75 + 0.075 · 0.125, 97.5 % 0.875 + 0.925 · 0.125
    q_low, q_high = 0.759375, 0.990625
    # delta method: var(r) = var(Ā) / B̄² = (0.003 / 3) / 0.64, t on the pooled 6 df
    h = 2.4469119 * np.sqrt(0.001 / 0.64)
    got = seed_and_query_ratio(a, b, every, pooled=(0.003, 6))
    assert got == pytest.approx((0.875, 0.875 - np.hypot(h, 0.875 - q_low), 0.875 + np.hypot(h, q_high - 0.875)),
                                abs=1e-6)


def test_the_p_value_inverts_the_widened_interval():
    # constant per-query differences: no query spread, the interval is d ± t · se and its p the t test's
    se = np.sqrt(0.0012 / 3)
    assert widened_p_value(0.05, np.full(100, 0.05), se ** 2, 4) == pytest.approx(2 * stats.t.sf(0.05 / se, 4), rel=1e-6)
    # in general: the level-c interval excludes 0 exactly when p < 1 − c
    rng = np.random.default_rng(4)
    resamples = query_resamples(40, 500, seed=2)
    for _ in range(20):
        a = 0.5 + 0.03 * rng.standard_normal((3, 1)) + 0.2 * rng.standard_normal((3, 40)) + rng.uniform(0, 0.1)
        b = 0.5 + 0.03 * rng.standard_normal((3, 1)) + 0.2 * rng.standard_normal((3, 40))
        (name_and_p,) = family_differences([("x", a, b)], lambda n: resamples, {"x": (0.001, 8)})
        for confidence in (0.5, 0.8, 0.9, 0.95, 0.99):
            _, low, high = seed_and_query_difference(a, b, resamples, confidence, pooled=(0.001, 8))
            assert excludes_zero(low, high) == (name_and_p["p"] < 1 - confidence)
    # the query bootstrap alone with every draw above 0: below its resolution, 1 / R
    assert widened_p_value(0.3, np.array([0.1, 0.2, 0.3, 0.4]), 0.0, 0) == 0.25


# Multiplicity: Holm (1979) over a family

def holm_rejections(p, alpha):
    """Holm's procedure step by step: reject the smallest p while p_(i) ≤ α / (m − i + 1), then stop."""
    rejected = set()
    for i, j in enumerate(np.argsort(p, kind="stable")):
        if p[j] > alpha / (len(p) - i):
            break
        rejected.add(int(j))
    return rejected


def test_holm_adjusts_step_down_worked_by_hand_and_against_the_procedure():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 → running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.uniform(0, 0.1, rng.integers(1, 12)) ** 2
        assert set(np.flatnonzero(holm(p) <= 0.05)) == holm_rejections(p, 0.05)


def constant_pair(t_stat, seeds=3, variance=0.0012, df=4, queries=6):
    """A over `seeds` seeds and B trained once whose difference is t_stat pooled standard errors, the same on
    every query (no query spread): its two-sided p is the t test's, 2 · P(T_df > t_stat)."""
    d = t_stat * np.sqrt(variance / seeds)
    return np.full((seeds, queries), 0.5 + d), np.full((1, queries), 0.5)


def test_a_family_marks_only_what_survives_holm():
    t_03 = stats.t.isf(0.015, 4)  # p = 0.03 each: both excluded by their own 95% interval, Holm gives 0.06
    pairs = [("one", *constant_pair(t_03)), ("two", *constant_pair(t_03))]
    got = family_differences(pairs, lambda n: np.zeros((20, n), dtype=int), {"one": (0.0012, 4), "two": (0.0012, 4)})
    assert [g["p"] for g in got] == pytest.approx([0.03, 0.03], rel=1e-6)
    assert [g["p_holm"] for g in got] == pytest.approx([0.06, 0.06], rel=1e-6)
    assert all(g["excludes_zero"] and not g["marked"] for g in got)
    assert set(got[0]) == {"name", "diff", "low", "high", "p", "p_holm", "marked", "excludes_zero", "seeds_a", "seeds_b",
                           "df", "queries"}
    # one clear difference in the family: p = 0.001 → Holm 0.002, marked; the other 0.03 → 0.03, marked too
    pairs[0] = ("one", *constant_pair(stats.t.isf(0.0005, 4)))
    got = family_differences(pairs, lambda n: np.zeros((20, n), dtype=int), {"one": (0.0012, 4), "two": (0.0012, 4)})
    assert [g["p_holm"] for g in got] == pytest.approx([0.002, 0.03], rel=1e-6) and all(g["marked"] for g in got)
    assert [g["name"] for g in got] == ["one", "two"] and got[0]["seeds_a"] == 3 and got[0]["seeds_b"] == 1


def test_one_seed_is_never_marked_however_small_its_p():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.3, 0.7, 200)
    a, b = (base + 0.2)[None], base[None]  # the query bootstrap alone: every draw at 0.2
    (got,) = family_differences([("x", a, b)], lambda n: query_resamples(n, 500, seed=0))
    assert got["excludes_zero"] and got["p"] == pytest.approx(1 / 500) and not got["marked"]
    # a pooled variance measured on other students does not mark a one-seed difference either
    (got,) = family_differences([("x", a, b)], lambda n: query_resamples(n, 500, seed=0), {"x": (1e-6, 20)})
    assert got["p_holm"] < 0.05 and not got["marked"]


def test_queries_without_positives_are_left_out_of_both_sides():
    a, b = constant_pair(5.0)
    a[:, 2] = np.nan
    b[:, 4] = np.nan
    (got,) = family_differences([("x", a, b)], lambda n: np.zeros((5, n), dtype=int), {"x": (0.0012, 4)})
    assert got["queries"] == 4 and got["diff"] == pytest.approx(5.0 * 0.02)


# Calibration: a method × query effect, a seed effect and seed × query noise

def simulate(rng, trials, shift=0.0, queries=100, seeds=3, others=10, sd_seed=0.02, sd_method_query=0.115,
             sd_noise=0.02):
    """Per-query scores (trials, seeds, queries) of methods A and B on the same queries: a shared query
    difficulty, a method × query effect, a training-seed effect moving every query, seed × query noise; and
    the per-seed mAP of `others` students of the same seed spread (trials, others, seeds) to pool with."""
    difficulty = rng.beta(2, 2, (trials, 1, queries))

    def method(offset):
        return (difficulty + offset + sd_method_query * rng.standard_normal((trials, 1, queries))
                + sd_seed * rng.standard_normal((trials, seeds, 1))
                + sd_noise * rng.standard_normal((trials, seeds, queries)))
    spread = np.sqrt(sd_seed ** 2 + sd_noise ** 2 / queries)  # a per-seed mAP's seed spread
    return method(shift), method(0.0), spread * rng.standard_normal((trials, others, seeds))


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_the_widened_pooled_difference_covers_a_null_at_its_confidence(confidence):
    # 3,000 trials; 1,000 resamples of 100 queries (one explicit draw reused: the trials' data are independent).
    # At 95% the band [2,802, 2,898] excludes a 90% interval's 2,700; at 80% [2,312, 2,488] excludes 90%.
    trials = 3000
    a, b, others = simulate(np.random.default_rng(5), trials)
    resamples = np.random.default_rng(6).integers(0, 100, (1000, 100))
    held = 0
    for i in range(trials):
        pooled = pooled_variance([a[i].mean(axis=1), b[i].mean(axis=1), *others[i]])
        _, low, high = seed_and_query_difference(a[i], b[i], resamples, confidence, pooled=pooled)
        held += low <= 0 <= high
    band = binomial_band(trials, confidence)
    assert band[0] <= held <= band[1], held


def test_the_widened_pooled_difference_has_the_t_tests_power_at_a_moderate_shift():
    # The methods share every query effect, so the per-query difference is the seeds' alone, the same on every
    # query: the query bootstrap adds nothing and the mark is the pooled two-sample t test, whose power is the
    # noncentral t's exactly: noncentrality δ / (σ √(2/3)) = 2.5 on 2 + 2 + 6 · 2 = 16 df.
    rng = np.random.default_rng(7)
    trials, sd, seeds, queries = 2000, 0.02, 3, 12
    shift = 2.5 * sd * np.sqrt(2 / seeds)
    difficulty = rng.beta(2, 2, (trials, 1, queries))
    a = difficulty + shift + sd * rng.standard_normal((trials, seeds, 1))
    b = difficulty + sd * rng.standard_normal((trials, seeds, 1))
    others = sd * rng.standard_normal((trials, 6, seeds))
    resamples = np.random.default_rng(8).integers(0, queries, (200, queries))
    found = 0
    for i in range(trials):
        pooled = pooled_variance([a[i].mean(axis=1), b[i].mean(axis=1), *others[i]])
        found += excludes_zero(*seed_and_query_difference(a[i], b[i], resamples, pooled=pooled)[1:])
    critical = stats.t.ppf(0.975, 16)
    power = stats.nct.sf(critical, 16, 2.5) + stats.nct.cdf(-critical, 16, 2.5)  # 0.651
    band = binomial_band(trials, power)
    assert band[0] <= found <= band[1], (found, power * trials)


# What a family can detect

def test_minimum_detectable_difference_and_seeds_needed_worked_by_hand():
    # (t_{0.975, 24} + t_{0.8, 24}) · 0.02 · √(2/3) = (2.063899 + 0.856855) · 0.0163299 = 0.047696
    assert detectable_difference(0.02, 24, 3) == pytest.approx(0.047696, abs=1e-6)
    assert detectable_difference(0.02, 24, 3, sides=1) == pytest.approx(0.047696 / np.sqrt(2), abs=1e-6)
    assert np.isnan(detectable_difference(float("nan"), 0, 1))
    # 12 students: n seeds give 12 (n − 1) df; the fewest n whose MDD is at most 0.03
    need = seeds_needed(0.03, 0.02, 12)
    assert detectable_difference(0.02, 12 * (need - 1), need) <= 0.03 < detectable_difference(0.02, 12 * (need - 2), need - 1)
    assert seeds_needed(1e-6, 0.02, 12, most=50) is None
