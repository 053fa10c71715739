"""The table's intervals and paired differences from per-query AP."""
import numpy as np
import pytest

from pipeline.evaluate.intervals import query_resamples
from pipeline.report.comparison import compare_students, difference_note, interval_cell


def resamples_of(n):
    return query_resamples(n, 2000, seed=0)


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
    assert got["good"]["symmetric"]["vs_no_distill"]["excludes_zero"]
    assert got["good"]["asymmetric"]["vs_teacher"]["diff"] == pytest.approx(0.05)
    assert not got["same"]["symmetric"]["vs_no_distill"]["excludes_zero"]
    assert "vs_no_distill" not in got["no_distill"]["symmetric"]
    one = got["good"]["symmetric"]
    assert one["over"] == "queries" and one["seeds"] == 1 and one["low"] < one["mAP"] < one["high"]
    assert np.isfinite(got["same"]["symmetric"]["mAP"])


def test_several_seeds_give_the_seed_interval():
    queries = {"s": {"symmetric": np.array([[0.8] * 10, [0.9] * 10, [1.0] * 10])}}
    got = compare_students({"s": {"method": "csd", "teacher": "t"}}, queries, {}, resamples_of)["s"]["symmetric"]
    assert got["over"] == "seeds" and got["seeds"] == 3
    assert (got["mAP"], got["low"], got["high"]) == pytest.approx((0.9, 0.9 - 0.248414, 0.9 + 0.248414), abs=1e-6)


def test_revisited_results_compare_the_medium_setting():
    queries = {"no_distill": {"symmetric.medium": np.full((1, 5), 0.5), "symmetric.easy": np.full((1, 5), 0.9)},
               "s": {"symmetric.medium": np.full((1, 5), 0.7), "symmetric.easy": np.full((1, 5), 0.1)}}
    students = {"no_distill": {"method": "no_distill", "teacher": "t"}, "s": {"method": "csd", "teacher": "t"}}
    got = compare_students(students, queries, {}, resamples_of)
    assert got["s"]["symmetric"]["vs_no_distill"]["diff"] == pytest.approx(0.2)


def test_cells_and_notes():
    assert interval_cell({"low": 0.81234, "high": 0.9}) == "[0.812, 0.900]"
    assert interval_cell({"low": float("nan"), "high": float("nan")}) == "–"
    note = difference_note("no_distill", {"diff": 0.138, "low": 0.12, "high": 0.155, "excludes_zero": True})
    assert note == "+0.138 [+0.120, +0.155] vs no_distill *"
