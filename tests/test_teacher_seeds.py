"""benchmarks/teacher_seeds: the teacher-level spread of a figure, from hand-worked values."""
import numpy as np
import pytest
from scipy import stats

from benchmarks.teacher_seeds import spread, summarise, without_students


def test_the_teacher_component_is_the_spread_between_teacher_seeds_less_the_student_seeds_share():
    # values 0.8, 0.9, 1.0: SD 0.1; student seeds' share 0.001 each: teacher SD √(0.01 − 0.001) = 0.094868
    got = spread([0.8, 0.9, 1.0], [0.001, 0.001, 0.001])
    assert got["sd_between"] == pytest.approx(0.1) and got["sd_teacher"] == pytest.approx(np.sqrt(0.009))
    half = stats.t.ppf(0.975, 2) * 0.1 / np.sqrt(3)  # 4.303 · 0.0577 = 0.2484
    assert (got["low"], got["high"]) == (pytest.approx(0.9 - half), pytest.approx(0.9 + half))
    assert spread([0.5, 0.5, 0.5], [0.01] * 3)["sd_teacher"] == 0.0  # seed noise larger than the spread: floored


def comparison(csd, diff):
    """A comparison.json with one student row and one reference difference (half-width 0.02 on 8 df)."""
    half = 0.02
    return {"pooled": {"symmetric": {"mAP": {"sd": 0.03}}},
            "csd": {"symmetric": {"mAP": csd, "seeds": 3}},
            "comparisons": {"csd symmetric vs no_distill": {"family": "reference", "diff": diff, "low": diff - half,
                                                            "high": diff + half, "df": 8, "marked": True,
                                                            "setting": "symmetric", "seeds_a": 3, "seeds_b": 3}}}


def test_rows_and_differences_are_summarised_over_the_teacher_seeds():
    got = summarise({0: comparison(0.80, 0.10), 1: comparison(0.82, 0.12), 2: comparison(0.84, 0.08)})
    row = got["rows"]["csd symmetric"]
    assert row["values"] == [0.80, 0.82, 0.84] and row["sd_between"] == pytest.approx(0.02)
    assert row["sd_teacher"] == pytest.approx(np.sqrt(0.02 ** 2 - 0.03 ** 2 / 3))  # 0.0004 − 0.0003
    d = got["differences"]["csd symmetric vs no_distill"]
    # the student seeds' share: s²_pooled (1/3 + 1/3) = 0.0009 · 2/3 = 0.0006 > 0.02² = 0.0004: floored
    assert d["sd_between"] == pytest.approx(0.02) and d["sd_teacher"] == 0.0
    wider = summarise({0: comparison(0.80, 0.10), 1: comparison(0.82, 0.16), 2: comparison(0.84, 0.04)})
    # SD between 0.06: √(0.0036 − 0.0006)
    assert wider["differences"]["csd symmetric vs no_distill"]["sd_teacher"] == pytest.approx(np.sqrt(0.003))
    assert d["same_sign"] and d["survives"] and d["kind"] == "vs no_distill"  # 0.10 ± 4.303 · 0.02 / √3 = ± 0.050
    flipped = summarise({0: comparison(0.8, 0.05), 1: comparison(0.8, -0.05), 2: comparison(0.8, 0.06)})
    assert not flipped["differences"]["csd symmetric vs no_distill"]["same_sign"]
    assert not flipped["differences"]["csd symmetric vs no_distill"]["survives"]


def test_the_demo_run_is_pooled_without_its_online_students():
    run = {"pooled": {"symmetric": {"mAP": {"sd": 9.0}}},
           "a": {"symmetric": {"mAP": 0.8, "seeds": 3, "sd": 0.01}}, "b": {"symmetric": {"mAP": 0.7, "seeds": 3, "sd": 0.03}},
           "b_online": {"symmetric": {"mAP": 0.7, "seeds": 3, "sd": 0.5}}, "comparisons": {}}
    got = without_students(run, {"b_online"})
    assert set(got) == {"a", "b", "pooled", "comparisons"}
    assert got["pooled"]["symmetric"]["mAP"]["sd"] == pytest.approx(np.sqrt((2 * 0.0001 + 2 * 0.0009) / 4))
