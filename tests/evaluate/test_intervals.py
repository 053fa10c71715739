"""Intervals over seeds and paired bootstraps over queries, against hand computations and by calibration."""
import numpy as np
import pytest

from pipeline.evaluate.intervals import (bootstrap_interval, excludes_zero, paired_difference, query_resamples,
                                         seed_interval)


def test_seed_interval_is_the_student_t_interval_worked_by_hand():
    # mean 0.9, s = 0.1, t_{0.975, 2} = 4.302653: half-width 4.302653 · 0.1 / √3 = 0.248414
    mean, low, high = seed_interval([0.8, 0.9, 1.0])
    assert mean == pytest.approx(0.9) and low == pytest.approx(0.9 - 0.248414, abs=1e-6)
    assert high == pytest.approx(0.9 + 0.248414, abs=1e-6)
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
    assert 176 <= held <= 198  # 88–99 % of 200 trials


def test_a_real_difference_is_excluded_from_zero():
    rng = np.random.default_rng(1)
    resamples = query_resamples(200, 2000, seed=1)
    diff, low, high = paired_difference(*synthetic_scores(rng, 0.05), resamples)
    assert low > 0 and excludes_zero(low, high) and diff == pytest.approx(0.05, abs=0.02)


def test_seeds_widen_the_difference_interval_by_the_welch_interval_worked_by_hand():
    from scipy import stats

    from pipeline.evaluate.intervals import seed_and_query_difference

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
    from pipeline.evaluate.intervals import seed_and_query_difference

    rng = np.random.default_rng(2)
    resamples = query_resamples(200, 1000, seed=1)
    trials = [seed_shifted_scores(rng, 0.0) for _ in range(200)]
    held = sum(not excludes_zero(*seed_and_query_difference(a, b, resamples)[1:]) for a, b in trials)
    queries_only = sum(not excludes_zero(*paired_difference(a, b, resamples)[1:]) for a, b in trials)
    assert 176 <= held <= 200  # 88–100 % of 200 trials (Welch's df make it somewhat conservative)
    assert queries_only < 150  # the query bootstrap alone claims a difference in over a quarter of them
    diff, low, high = seed_and_query_difference(*seed_shifted_scores(np.random.default_rng(3), 0.15), resamples)
    assert low > 0 and diff == pytest.approx(0.15, abs=0.06)
