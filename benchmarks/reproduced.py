"""Whether a second run of the demo reproduces the first, from each run's metrics/comparison.json.

Two modes say what the second run is:
- `demo`: a second project folder after its own `dvc repro`, teachers retrained too (e.g. with other CPU
  kernels: ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA);
- `students`: a rerun of the students alone from the first run's cached teacher features (the same
  data/features and data/whitened; e.g. a copy of the first folder with its kept seeds removed,
  `rm -r data/.partial/seeds`, every `train@S` forced with `dvc repro --force --single-item train@S`, then
  `dvc repro report`), given as its project folder or its metrics folder. Its teachers' rows must equal the
  first run's; the result says whether they do.

A row is judged by a replication prediction interval for the second run's mean, m̄₁ ± t_{(1+c)/2, ν} ·
√(s₁²/n₁ + s₂²/n₂): s_i the seed SD of the setting pooled over that run's students (`pooled` in
comparison.json), n_i the row's seeds, ν by Welch–Satterthwaite from the two pooled df. If the second run is
another draw of the same distribution (no effect of retrained teachers or of the machine) a fraction c of
rows falls inside; the observed fraction is printed beside that expected one. A difference marked in either
run (Holm-adjusted, or for older files its interval excluding 0) is checked for a change of sign. Writes
benchmarks/results/<name>.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from scipy import stats

from pipeline.report.comparison import RESERVED

RESULTS = Path(__file__).resolve().parent / "results"
CONFIDENCE = 0.95
MODES = {"demo": "a full second run, teachers retrained",
         "students": "a rerun of the students alone from the first run's cached teacher features"}


def prediction_interval(mean: float, first: tuple[float, float, int], second: tuple[float, float, int],
                        confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(low, high, ν) of a replication prediction interval: mean ± t_{(1+c)/2, ν} · √(s₁²/n₁ + s₂²/n₂), each run
    given as (s, df, n); ν from Welch–Satterthwaite, (v₁ + v₂)² / (v₁²/df₁ + v₂²/df₂), v_i = s_i²/n_i."""
    (s1, df1, n1), (s2, df2, n2) = first, second
    v1, v2 = s1 ** 2 / n1, s2 ** 2 / n2
    if not (df1 >= 1 and df2 >= 1 and np.isfinite(v1 + v2)):
        return float("nan"), float("nan"), 0.0
    nu = (v1 + v2) ** 2 / (v1 ** 2 / df1 + v2 ** 2 / df2) if v1 + v2 > 0 else float(df1 + df2)
    half = float(stats.t.ppf((1 + confidence) / 2, nu) * np.sqrt(v1 + v2))
    return mean - half, mean + half, float(nu)


def row_spread(figures: dict, pooled: dict, setting: str) -> tuple[float, float, int]:
    """(s, df, n) of a row's seeds: its setting's pooled SD and df (comparison.json `pooled`); in files without
    them, the row's own SD, from its Student-t interval over n seeds when no `sd` is stored."""
    n = int(figures.get("seeds", 1))
    spread = pooled.get(setting, {}).get("mAP")
    if spread:
        return float(spread["sd"]), float(spread["df"]), n
    if "sd" in figures:
        return float(figures["sd"]), float(n - 1), n
    if n < 2:
        return float("nan"), 0.0, n
    half = (figures["high"] - figures["low"]) / 2
    return float(half * np.sqrt(n) / stats.t.ppf((1 + CONFIDENCE) / 2, n - 1)), float(n - 1), n


def marked(figures: dict) -> bool:
    """Whether a difference carries the table's mark (Holm-adjusted), or for older files its interval excludes 0."""
    return bool(figures.get("marked", figures.get("excludes_zero", False)))


def teachers_match(first: dict, second: dict, tolerance: float = 1e-9) -> bool | None:
    """Whether both runs' teacher rows hold the same mAP (the same cached features); None when not stored."""
    a, b = first.get("teachers"), second.get("teachers")
    if not a or not b:
        return None
    flat = [(t, s) for t, settings in a.items() for s in settings]
    return all(abs(a[t][s]["mAP"] - b.get(t, {}).get(s, {}).get("mAP", np.inf)) <= tolerance for t, s in flat)


def compare(first: dict, second: dict, confidence: float = CONFIDENCE) -> dict:
    """Row by row: the second run's mean against the replication prediction interval from both runs' seeds, the
    expected and observed inside-rates, and the marked differences' signs."""
    rows, flips = [], []
    for name, settings in sorted(first.items()):
        if name in RESERVED:
            continue
        for setting, figures in sorted(settings.items()):
            other = second.get(name, {}).get(setting)
            if other is None:
                continue
            low, high, nu = prediction_interval(figures["mAP"], row_spread(figures, first.get("pooled", {}), setting),
                                                row_spread(other, second.get("pooled", {}), setting), confidence)
            rows.append({"student": name, "setting": setting, "first": figures["mAP"], "second": other["mAP"],
                         "low": low, "high": high, "df": nu, "inside": bool(low <= other["mAP"] <= high)})
            for key in ("vs_no_distill", "vs_teacher"):
                a, b = figures.get(key), other.get(key)
                if a and b and (marked(a) or marked(b)):
                    flips.append({"student": name, "setting": setting, "against": key, "first": a["diff"],
                                  "second": b["diff"], "first_marked": marked(a), "second_marked": marked(b),
                                  "sign_changed": (a["diff"] > 0) != (b["diff"] > 0)})
    inside = sum(r["inside"] for r in rows)
    return {"rows": len(rows), "second_mean_inside_prediction_interval": inside,
            "inside_rate": inside / len(rows) if rows else float("nan"), "expected_inside_rate": confidence,
            "marked_differences": len(flips), "marked_sign_changes": sum(f["sign_changed"] for f in flips),
            "by_row": rows, "marked": flips}


def read_comparison(folder: Path) -> dict:
    """A run's comparison.json: from a project folder (metrics/comparison.json) or a metrics folder."""
    for path in (folder / "metrics" / "comparison.json", folder / "comparison.json"):
        if path.is_file():
            return json.loads(path.read_text())
    raise typer.BadParameter(f"no metrics/comparison.json or comparison.json under {folder}")


def main(first: Path = typer.Argument(..., help="project folder of the first run"),
         second: Path = typer.Argument(..., help="the second run: its project folder, or (mode students) its metrics "
                                                 "folder"),
         mode: str = typer.Option("demo", help="; ".join(f"{k}: {v}" for k, v in MODES.items())),
         name: str = typer.Option("reproduced", help="results file: benchmarks/results/<name>.json")) -> None:
    """Compare two runs' rows and marked differences and write the result."""
    if mode not in MODES:
        raise typer.BadParameter(f"mode is one of {', '.join(MODES)}, not {mode!r}")
    runs = read_comparison(first), read_comparison(second)
    result = compare(*runs)
    result.update({"first": str(first), "second": str(second), "mode": mode, "second_run": MODES[mode]})
    line = (f"{result['second_mean_inside_prediction_interval']} of {result['rows']} rows' second means inside the "
            f"{CONFIDENCE:.0%} prediction intervals ({result['inside_rate']:.0%}; expected {CONFIDENCE:.0%} if the "
            f"second run is another draw of the first's distribution); {result['marked_sign_changes']} of "
            f"{result['marked_differences']} marked differences changed sign")
    if mode == "students":
        result["teachers_identical"] = teachers_match(*runs)
        line += {True: "; teachers' rows identical", False: "; teachers' rows DIFFER: not the same cached features",
                 None: "; teachers' rows not stored"}[result["teachers_identical"]]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(line)


if __name__ == "__main__":
    typer.run(main)
