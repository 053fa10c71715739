"""The table's intervals, pooled over students, and its family of differences from per-query AP."""
import numpy as np
import pytest
from scipy import stats

from pipeline.evaluate.intervals import binary_scores, bootstrap_interval, query_resamples
from pipeline.report.comparison import (compare_family, compare_students, difference_note, interval_cell, ratio_note,
                                        students_of)


def resamples_of(n):
    return query_resamples(n, 2000, seed=0)


def by_seed(recalls, setting="symmetric", queries=10):
    """metrics/eval's per-seed figures with the given Recall@1 of each seed."""
    return {str(i): {setting: {"R@1": r, "R@5": min(1.0, r + 0.1), "queries": queries, "queries_without_positives": 0}}
            for i, r in enumerate(recalls)}


def test_students_get_intervals_and_differences_from_their_references():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.7, 300)
    queries = {
        "no_distill": {"symmetric": base[None]},
        "good": {"symmetric": (base + 0.1)[None], "asymmetric": (base + 0.05)[None]},
        "same": {"symmetric": (base + 0.02 * rng.standard_normal(300))[None]},
    }
    queries["same"]["symmetric"][0, 7] = np.nan  # a query without positives is left out of both sides ...
    queries["no_distill"]["symmetric"] = queries["no_distill"]["symmetric"].copy()
    queries["no_distill"]["symmetric"][0, 11] = np.nan  # ... whichever side it is on
    students = {"no_distill": {"method": "no_distill", "teacher": "t"}, "good": {"method": "csd", "teacher": "t"},
                "same": {"method": "pkt", "teacher": "t"}}
    teacher = {"t": {"whitened": base, "raw": base}}
    got = compare_students(students, queries, teacher, resamples_of)
    assert got["good"]["symmetric"]["vs_no_distill"]["diff"] == pytest.approx(0.1)
    assert got["good"]["asymmetric"]["vs_teacher"]["diff"] == pytest.approx(0.05)
    assert got["good"]["symmetric"]["vs_no_distill"]["queries"] == 299  # no_distill's query 11 left out
    assert not got["same"]["symmetric"]["vs_no_distill"]["excludes_zero"]
    assert "vs_no_distill" not in got["no_distill"]["symmetric"]
    one = got["good"]["symmetric"]
    assert one["over"] == "queries" and one["seeds"] == 1 and one["low"] < one["mAP"] < one["high"]
    assert np.isfinite(got["same"]["symmetric"]["mAP"])
    # one seed: the query bootstrap excludes 0, but nothing is marked (it undercovers when seeds move models)
    assert got["good"]["symmetric"]["vs_no_distill"]["excludes_zero"]
    assert not any(c["marked"] for c in got["comparisons"].values())
    assert got["families"]["reference"]["smallest_marked"] is None


def seeded(level, seed_offsets, queries=40):
    """(seeds, queries) AP whose mean over queries is `level` + each seed's offset: one per-query pattern of mean 0."""
    pattern = 0.1 * np.sin(np.arange(queries))
    return level + (pattern - pattern.mean())[None] + np.asarray(seed_offsets)[:, None]


def test_rows_pool_the_seed_variance_over_the_students_of_a_setting():
    # per-seed mAP: a 0.8, 0.9, 1.0 (SS 0.02), b 0.5, 0.5, 0.8 (SS 0.06): s²_p = 0.08 / 4 = 0.02 on 4 df;
    # every row: t_{0.975, 4} · √(0.02 / 3) = 2.776445 · 0.0816497 = 0.226696
    queries = {"a": {"symmetric": seeded(0.9, [-0.1, 0.0, 0.1])},
               "b": {"symmetric": seeded(0.6, [-0.1, -0.1, 0.2])}}
    students = {"a": {"method": "csd", "teacher": "t"}, "b": {"method": "pkt", "teacher": "t"}}
    got = compare_students(students, queries, {}, resamples_of)
    a = got["a"]["symmetric"]
    assert a["over"] == "seeds" and a["seeds"] == 3 and a["df"] == 4
    assert (a["mAP"], a["low"], a["high"]) == pytest.approx((0.9, 0.9 - 0.226696, 0.9 + 0.226696), abs=1e-6)
    # its own SD and own-t interval beside it: 4.302653 · 0.1 / √3 = 0.248414
    assert (a["sd"], a["own_low"], a["own_high"]) == pytest.approx((0.1, 0.9 - 0.248414, 0.9 + 0.248414), abs=1e-6)
    assert got["b"]["symmetric"]["high"] - got["b"]["symmetric"]["mAP"] == pytest.approx(0.226696, abs=1e-6)
    pooled = got["pooled"]["symmetric"]["mAP"]
    assert (pooled["sd"], pooled["df"], pooled["students"], pooled["seeds"]) == (pytest.approx(np.sqrt(0.02)), 4, 2, 3)
    assert (pooled["own_sd_min"], pooled["own_sd_max"]) == pytest.approx((0.1, np.sqrt(0.03)))
    assert set(students_of(got)) == {"a", "b"}


def test_recall_at_1_is_pooled_over_seeds_for_students_and_over_queries_for_teachers():
    queries = {"a": {"symmetric": seeded(0.9, [-0.1, 0.0, 0.1])},
               "b": {"symmetric": seeded(0.6, [-0.1, -0.1, 0.2])}}
    students = {"a": {"method": "csd", "teacher": "t", "by_seed": by_seed([0.6, 0.7, 0.8])},
                "b": {"method": "pkt", "teacher": "t", "by_seed": by_seed([0.5, 0.5, 0.8])}}
    teachers = {"t": {"raw": {"mAP": 0.5, "R@1": 0.7, "queries": 40, "queries_without_positives": 0},
                      "whitened": {"mAP": 0.5, "R@1": 0.75, "R@10": 0.9, "queries": 42, "queries_without_positives": 2}}}
    teacher_queries = {"t": {"raw": np.full(40, 0.5), "whitened": np.linspace(0.3, 0.7, 40)}}
    ensembles = {"EM": {"teachers": ["t"], "symmetric": {"mAP": 0.6, "R@1": 0.9, "queries": 40}}}
    got = compare_students(students, queries, teacher_queries, resamples_of, teachers, ensembles,
                           {"EM": {"symmetric": np.linspace(0.4, 0.8, 40)}})
    assert set(got["a"]["symmetric"]["intervals"]) == {"R@1", "R@5"}  # R@5 is pooled as R@1 is
    recall = got["a"]["symmetric"]["intervals"]["R@1"]  # the same pooled s² as mAP's here: 0.226696
    assert (recall["value"], recall["low"], recall["high"]) == pytest.approx((0.7, 0.7 - 0.226696, 0.7 + 0.226696),
                                                                              abs=1e-6)
    whitened = got["teachers"]["t"]["whitened"]
    assert whitened["over"] == "queries" and whitened["queries"] == 40
    assert (whitened["low"], whitened["high"]) == pytest.approx(
        bootstrap_interval(np.linspace(0.3, 0.7, 40), resamples_of(40))[1:])
    # R@1 over 40 queries with positives: 30 hits; the bootstrap of 0/1 scores needs only their count
    teacher_recall = got["teachers"]["t"]["whitened"]["intervals"]["R@1"]
    assert teacher_recall["value"] == pytest.approx(0.75)
    assert (teacher_recall["low"], teacher_recall["high"]) == pytest.approx(
        bootstrap_interval(binary_scores(0.75, 40), resamples_of(40))[1:])
    assert teacher_recall["low"] < 0.75 < teacher_recall["high"]
    assert got["teachers"]["t"]["whitened"]["intervals"]["R@10"]["high"] == pytest.approx(
        bootstrap_interval(binary_scores(0.9, 40), resamples_of(40))[2])  # 36 hits of 40
    assert got["ensembles"]["EM"]["symmetric"]["over"] == "queries"
    assert "R@1" in got["ensembles"]["EM"]["symmetric"]["intervals"]


def test_revisited_results_compare_the_medium_setting_and_give_easy_and_hard_intervals():
    queries = {"no_distill": {"symmetric.medium": np.full((1, 5), 0.5), "symmetric.easy": np.full((1, 5), 0.9),
                              "symmetric.hard": np.full((1, 5), 0.2)},
               "s": {"symmetric.medium": np.full((1, 5), 0.7), "symmetric.easy": np.full((1, 5), 0.1),
                     "symmetric.hard": np.full((1, 5), 0.3)}}
    students = {"no_distill": {"method": "no_distill", "teacher": "t"}, "s": {"method": "csd", "teacher": "t"}}
    got = compare_students(students, queries, {}, resamples_of)
    assert got["s"]["symmetric"]["vs_no_distill"]["diff"] == pytest.approx(0.2)
    assert got["s"]["symmetric"]["mAP"] == pytest.approx(0.7)
    assert got["s"]["symmetric"]["intervals"]["E mAP"]["value"] == pytest.approx(0.1)
    assert got["s"]["symmetric"]["intervals"]["H mAP"]["value"] == pytest.approx(0.3)


def family_of_students(shifts, seeds=(-0.02, 0.0, 0.02), queries=30):
    """A no_distill reference and one student per shift, three seeds each (the same seed spread, SD 0.02), over
    queries whose per-query difference is the shift alone."""
    queries_ = {"no_distill": {"symmetric": seeded(0.5, seeds, queries)}}
    students = {"no_distill": {"method": "no_distill", "teacher": "t"}}
    for i, shift in enumerate(shifts):
        queries_[f"m{i}"] = {"symmetric": seeded(0.5 + shift, seeds, queries)}
        students[f"m{i}"] = {"method": "csd", "teacher": "t"}
    return students, queries_


def test_the_family_is_holm_adjusted_and_named_in_the_comparisons():
    # pooled s = 0.02 on 3 · 2 = 6 df; a difference's se = 0.02 √(2/3); each p is the t test's
    se = 0.02 * np.sqrt(2 / 3)
    t_03 = stats.t.isf(0.015, 6)  # p = 0.03: unadjusted each excluded from 0, Holm over two: 0.06
    students, queries = family_of_students([t_03 * se, t_03 * se])
    got = compare_students(students, queries, {}, resamples_of)
    comparisons = got["comparisons"]
    assert set(comparisons) == {"m0 symmetric vs no_distill", "m1 symmetric vs no_distill"}
    first = comparisons["m0 symmetric vs no_distill"]
    assert {"family", "a", "b", "setting", "diff", "low", "high", "p", "p_holm", "marked"} <= set(first)
    assert (first["family"], first["a"], first["b"], first["setting"]) == ("reference", "m0", "no_distill", "symmetric")
    assert (first["p"], first["p_holm"]) == (pytest.approx(0.03, rel=1e-5), pytest.approx(0.06, rel=1e-5))
    assert first["excludes_zero"] and not first["marked"]
    assert got["m0"]["symmetric"]["vs_no_distill"] is first
    family = got["families"]["reference"]
    assert family["size"] == 2 and family["members"] == list(comparisons) and family["adjustment"] == "Holm 1979"
    # MDD: (t_{0.975, 6} + t_{0.8, 6}) · 0.02 · √(2/3)
    mdd = (stats.t.ppf(0.975, 6) + stats.t.ppf(0.8, 6)) * se
    assert family["detectable"]["symmetric"]["mdd"] == pytest.approx(mdd)
    assert family["detectable"]["symmetric"]["mdd_holm_first"] == pytest.approx(
        (stats.t.ppf(1 - 0.025 / 2, 6) + stats.t.ppf(0.8, 6)) * se)
    # a larger difference marked: the smallest marked one and the seeds it would need
    students, queries = family_of_students([t_03 * se, 8 * se])
    family = compare_students(students, queries, {}, resamples_of)["families"]["reference"]
    # m1's p is tiny (Holm: 2p), m0's 0.03 then passes Holm's second step (1 · 0.03): both marked
    smallest = family["smallest_marked"]
    assert smallest["name"] == "m0 symmetric vs no_distill" and smallest["diff"] == pytest.approx(t_03 * se)
    # the fewest seeds per side whose MDD (3 students pooled: 3 (n − 1) df) is at most that difference
    n = smallest["seeds_needed"]
    assert n == 4  # (t_{0.975, 9} + t_{0.8, 9}) · 0.02 · √(2/4) = 0.0445 ≤ 0.0462 < 0.0547 at n = 3 (6 df)


def test_a_family_can_be_computed_on_its_own_for_other_comparisons():
    a = np.full((3, 8), 0.7) + np.array([[-0.02], [0.0], [0.02]])
    b = np.full((3, 8), 0.6) + np.array([[-0.02], [0.0], [0.02]])
    pairs = [({"name": "s cached vs online", "a": "s cached", "b": "s online", "setting": "symmetric"}, a, b)]
    got = compare_family("cached - online", pairs, resamples_of)  # no pooled variance: Welch on the pair's seeds
    figures = got["s cached vs online"]
    se = np.sqrt(2 * 0.0004 / 3)
    assert figures["family"] == "cached - online" and figures["diff"] == pytest.approx(0.1)
    assert figures["df"] == pytest.approx(4) and figures["high"] - 0.1 == pytest.approx(stats.t.ppf(0.975, 4) * se)


def test_the_ratio_to_the_whitened_teacher_has_an_interval():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.7, 100)
    queries = {"s": {"symmetric": base + np.array([[-0.01], [0.0], [0.01]]),
                     "asymmetric": 1.1 * base + np.array([[-0.01], [0.0], [0.01]])}}
    got = compare_students({"s": {"method": "csd", "teacher": "t"}}, queries, {"t": {"whitened": base}}, resamples_of)
    ratio = got["s"]["asymmetric"]["ratio"]
    assert ratio["value"] == pytest.approx(1.1) and ratio["low"] < 1.1 < ratio["high"]
    assert ratio["of"] == "teacher t whitened"
    assert ratio_note(ratio) == f"1.10 [{ratio['low']:.2f}, {ratio['high']:.2f}] × whitened teacher mAP"


def test_student_names_may_not_take_a_reserved_key():
    with pytest.raises(ValueError, match="reserved"):
        compare_students({"pooled": {"method": "csd", "teacher": "t"}}, {}, {}, resamples_of)


def test_cells_and_notes():
    assert interval_cell({"low": 0.81234, "high": 0.9}) == "[0.812, 0.900]"
    assert interval_cell({"low": float("nan"), "high": float("nan")}) == "–"
    assert interval_cell(None) == "–"
    marked = {"diff": 0.138, "low": 0.12, "high": 0.155, "excludes_zero": True, "p_holm": 0.0042, "marked": True}
    assert difference_note("no_distill", marked) == "+0.138 [+0.120, +0.155] vs no_distill, Holm p 0.004 *"
    unmarked = {**marked, "p_holm": 0.06, "marked": False}  # its own interval excludes 0, Holm's p does not pass
    assert difference_note("no_distill", unmarked) == "+0.138 [+0.120, +0.155] vs no_distill, Holm p 0.060"
    assert difference_note("x", {**marked, "p_holm": 0.0001}).endswith("Holm p < 0.001 *")


def test_online_twins_form_the_caching_family_and_stay_out_of_the_reference_one():
    # pooled over the five students: every seed pattern (−0.01, 0, +0.01) has SS 0.0002, s²_p = 0.001 / 10 = 1e-4
    # on 10 df; cached − online = 0.05 with se = 0.01 √(2/3) and no query term (one per-query pattern)
    offsets = [-0.01, 0.0, 0.01]
    queries = {"no_distill": {"symmetric": seeded(0.5, offsets)},
               "csd": {"symmetric": seeded(0.80, offsets), "asymmetric": seeded(0.70, offsets)},
               "csd_online": {"symmetric": seeded(0.75, offsets), "asymmetric": seeded(0.70, offsets)},
               "fitnet": {"symmetric": seeded(0.6, offsets)}}
    students = {"no_distill": {"method": "no_distill", "teacher": "t"}, "csd": {"method": "csd", "teacher": "t"},
                "csd_online": {"method": "csd", "teacher": "t"}, "fitnet": {"method": "fitnet", "teacher": "t"}}
    teacher = {"t": {"whitened": np.full(40, 0.6), "raw": np.full(40, 0.6)}}
    queries["pkt_online"] = {"symmetric": seeded(0.6, offsets)}  # online, without a cached twin
    students["pkt_online"] = {"method": "pkt", "teacher": "t"}
    got = compare_students(students, queries, teacher, resamples_of, online={"csd_online": "csd", "pkt_online": None})
    reference = got["families"]["reference"]["members"]
    assert reference == ["csd symmetric vs no_distill", "csd asymmetric vs t whitened", "fitnet symmetric vs no_distill"]
    caching = got["families"]["caching"]
    assert caching["members"] == ["csd − csd_online symmetric", "csd − csd_online asymmetric"]
    symmetric = got["csd_online"]["symmetric"]["vs_cached"]
    assert (symmetric["a"], symmetric["b"], symmetric["family"]) == ("csd", "csd_online", "caching")
    assert symmetric["diff"] == pytest.approx(0.05)
    half = stats.t.ppf(0.975, 10) * 0.01 * np.sqrt(2 / 3)
    assert (symmetric["low"], symmetric["high"]) == (pytest.approx(0.05 - half), pytest.approx(0.05 + half))
    asymmetric = got["csd_online"]["asymmetric"]["vs_cached"]
    assert asymmetric["diff"] == pytest.approx(0.0, abs=1e-12) and not asymmetric["marked"]
    assert symmetric["marked"]  # p ≈ 2e-4, Holm over the two: ≈ 4e-4
    assert "ratio" in got["csd_online"]["asymmetric"]  # the online row keeps its ratio to the teacher
    assert "vs_cached" not in got["csd"]["symmetric"]
