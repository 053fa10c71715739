"""The comparison of two demo runs that the README reports."""
import json

import numpy as np
import pytest
import typer
from scipy import stats
from typer.testing import CliRunner

from benchmarks import reproduced
from benchmarks.reproduced import compare, prediction_interval, row_spread


def test_the_prediction_interval_adds_both_runs_seed_variances_worked_by_hand():
    # s₁ = 0.02 on 24 df, s₂ = 0.03 on 24 df, 3 seeds each: v = 0.0004/3, 0.0009/3; √(v₁ + v₂) = 0.0208167;
    # ν = (v₁ + v₂)² / (v₁²/24 + v₂²/24) = 24 · 0.0013² / (0.0004² + 0.0009²) = 41.96
    low, high, nu = prediction_interval(0.8, (0.02, 24, 3), (0.03, 24, 3))
    assert nu == pytest.approx(24 * 0.0013 ** 2 / (0.0004 ** 2 + 0.0009 ** 2))
    half = stats.t.ppf(0.975, nu) * np.sqrt(0.0013 / 3)
    assert (low, high) == pytest.approx((0.8 - half, 0.8 + half))
    assert np.isnan(prediction_interval(0.8, (float("nan"), 0, 1), (0.03, 24, 3))[0])  # one seed: no interval


def test_the_inside_rate_of_a_second_draw_is_the_confidence():
    # both runs drawn from one distribution (20 students × 3 seeds, seed SD 0.02, pooled on 40 df each): a row's
    # second mean falls inside in 95% of trials (Welch's ν ≈ 80 here: t is all but exact); one row judged per
    # trial, so the trials are independent and the band binomial, ± 4 SDs
    rng = np.random.default_rng(0)
    trials, inside = 2000, 0
    for _ in range(trials):
        runs = []
        for _ in range(2):
            per_seed = np.linspace(0.6, 0.9, 20)[:, None] + 0.02 * rng.standard_normal((20, 3))
            s = np.sqrt(((per_seed - per_seed.mean(axis=1, keepdims=True)) ** 2).sum() / 40)
            runs.append({"m0": {"symmetric": {"mAP": float(per_seed[0].mean()), "seeds": 3}},
                         "pooled": {"symmetric": {"mAP": {"sd": s, "df": 40}}}})
        inside += compare(*runs)["second_mean_inside_prediction_interval"]
    assert abs(inside - 0.95 * trials) <= 4 * np.sqrt(trials * 0.95 * 0.05), inside / trials


def test_rows_are_judged_by_the_prediction_interval_and_marked_signs_against_each_other():
    pooled = {"symmetric": {"mAP": {"sd": 0.01, "df": 4}}}
    first = {"a": {"symmetric": {"mAP": 0.8, "low": 0.78, "high": 0.82, "seeds": 3,
                                 "vs_no_distill": {"diff": 0.05, "excludes_zero": True, "marked": True}}},
             "b": {"symmetric": {"mAP": 0.7, "low": 0.69, "high": 0.71, "seeds": 3,
                                 "vs_no_distill": {"diff": 0.01, "excludes_zero": True, "marked": False}}},
             "pooled": pooled, "teachers": {"t": {"raw": {"mAP": 0.9}}}}
    second = {"a": {"symmetric": {"mAP": 0.83, "seeds": 3,
                                  "vs_no_distill": {"diff": -0.02, "excludes_zero": False, "marked": False}}},
              "b": {"symmetric": {"mAP": 0.705, "seeds": 3,
                                  "vs_no_distill": {"diff": 0.02, "excludes_zero": False, "marked": False}}},
              "pooled": pooled, "teachers": {"t": {"raw": {"mAP": 0.9}}}}
    got = compare(first, second)
    # ± t_{0.975, 8} · 0.01 · √(2/3) = ± 0.0188: a's 0.83 lies 0.03 above 0.8, b's 0.705 inside
    assert (got["rows"], got["second_mean_inside_prediction_interval"]) == (2, 1)
    assert got["by_row"][0]["high"] == pytest.approx(0.8 + stats.t.ppf(0.975, 8) * 0.01 * np.sqrt(2 / 3))
    assert (got["inside_rate"], got["expected_inside_rate"]) == (0.5, 0.95)
    # only a's difference was marked (b's interval excluded 0 but Holm's p did not pass), and it flipped
    assert (got["marked_differences"], got["marked_sign_changes"]) == (1, 1)
    assert reproduced.teachers_match(first, second)
    assert not reproduced.teachers_match(first, {**second, "teachers": {"t": {"raw": {"mAP": 0.88}}}})


def test_older_files_give_each_row_its_own_seed_sd_from_its_interval():
    # a Student-t interval over 3 seeds of half-width 0.248414 is s = 0.1 (t_{0.975, 2} = 4.302653)
    assert row_spread({"mAP": 0.9, "low": 0.9 - 0.248414, "high": 0.9 + 0.248414, "seeds": 3}, {}, "symmetric") == \
        pytest.approx((0.1, 2, 3), abs=1e-6)
    assert row_spread({"mAP": 0.9, "sd": 0.05, "seeds": 3}, {}, "symmetric") == (0.05, 2, 3)


def test_the_students_mode_reads_a_metrics_folder_and_checks_the_teachers(tmp_path, monkeypatch):
    run = {"a": {"symmetric": {"mAP": 0.8, "seeds": 3, "sd": 0.01}}, "teachers": {"t": {"raw": {"mAP": 0.9}}}}
    (tmp_path / "one" / "metrics").mkdir(parents=True)
    (tmp_path / "one" / "metrics" / "comparison.json").write_text(json.dumps(run))
    (tmp_path / "rerun").mkdir()
    (tmp_path / "rerun" / "comparison.json").write_text(json.dumps(run))
    monkeypatch.setattr(reproduced, "RESULTS", tmp_path / "results")
    app = typer.Typer()
    app.command()(reproduced.main)
    out = CliRunner().invoke(app, [str(tmp_path / "one"), str(tmp_path / "rerun"), "--mode", "students"])
    assert out.exit_code == 0, out.output
    assert "1 of 1 rows" in out.output and "(100%; expected 95%" in out.output and "teachers' rows identical" in out.output
    written = json.loads((tmp_path / "results" / "reproduced.json").read_text())
    assert written["mode"] == "students" and written["teachers_identical"] is True
    assert CliRunner().invoke(app, [str(tmp_path / "one"), str(tmp_path / "rerun"), "--mode", "other"]).exit_code != 0
