"""The teachers' share of the results: the demo rerun from teachers fitted with other seeds (teacher.seed).

Every interval in the report is conditional on the teachers, trained once. This benchmark samples the
teacher axis: for each teacher seed it refits every demo teacher in a copy of the demo workspace (the
demo's prepared list, code and parameters), then extracts, whitens, mines, trains every cached student
with the demo's training seeds, evaluates and reports, exactly as `dvc repro` does. The demo's own run
(teacher.seed = `seed`) is one of the teacher seeds, read from metrics/comparison.json.

Per row (student and setting) and per difference of the report's reference family, over the teacher
seeds: the mean, the SD between teacher seeds, and the teacher component of the variance, the SD between
teacher seeds less what the student seeds alone put there (s_pooled² / n of each run, method of moments,
floored at 0); per difference also whether it keeps its sign under every teacher seed and whether its
teacher-level interval (mean ± t_{0.975, T−1} · SD / √T) excludes 0. Writes
benchmarks/results/teacher_seeds.json, which the report cites when its list is the one measured here.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import typer
import yaml
from scipy import stats

from benchmarks.common import write_result
from benchmarks.views import stage
from pipeline.io import sha256_file
from pipeline.params import load_params
from pipeline.report.comparison import students_of
from stages.report import teacher_share_key

ROOT = Path(__file__).resolve().parents[1]


def workspace(folder: Path, teacher_seed: int) -> Path:
    """A copy of the demo's code, prepared list and parameters whose teachers are fitted with `teacher_seed`,
    with the cached students alone (online students measure the cache, not the teachers)."""
    for entry in ("pipeline", "stages", "data/prepared"):
        shutil.copytree(ROOT / entry, folder / entry, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["teacher"] = {**(params.get("teacher") or {}), "seed": teacher_seed}
    params["students"] = {n: s for n, s in params["students"].items() if not s.get("online")}
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def rerun(folder: Path) -> dict:
    """Every stage of the demo in `folder`, in dvc.yaml's order; its metrics/comparison.json."""
    params = load_params(folder / "params.yaml")
    for teacher in params.teachers:
        for command in ("teacher", "extract", "whiten", "mine", "evaluate-teacher"):
            stage(folder, command, teacher)
    stage(folder, "evaluate-em")
    for student in [*params.students, *params.ensembles]:
        stage(folder, "train", student)
        stage(folder, "evaluate", student)
    stage(folder, "report")
    return json.loads((folder / "metrics/comparison.json").read_text())


def rows_of(comparison: dict) -> dict[str, tuple[float, float]]:
    """Every student row "name setting": (mAP, the squared seed term s_pooled² / n of its interval)."""
    pooled = {s: figures["mAP"]["sd"] ** 2 for s, figures in comparison["pooled"].items()}
    return {f"{name} {setting}": (f["mAP"], pooled[setting] / f["seeds"])
            for name, settings in students_of(comparison).items() for setting, f in settings.items()}


def spread(values: list[float], seed_terms: list[float]) -> dict:
    """Mean, SD between teacher seeds, the teacher component (that SD less the student seeds' share, floored at
    0) and the teacher-level 95% interval of the mean, of one figure measured under each teacher seed."""
    values = np.asarray(values, dtype=float)
    between = float(values.std(ddof=1))
    component = float(np.sqrt(max(0.0, between ** 2 - float(np.mean(seed_terms)))))
    half = float(stats.t.ppf(0.975, len(values) - 1) * between / np.sqrt(len(values)))
    return {"values": values.tolist(), "mean": float(values.mean()), "sd_between": between,
            "sd_teacher": component, "low": float(values.mean() - half), "high": float(values.mean() + half)}


def without_students(comparison: dict, names: set[str]) -> dict:
    """A comparison without the named students' rows, each setting's pooled mAP SD recomputed over the rest
    (Σ(n_i − 1) s_i² / Σ(n_i − 1)): the demo's own run, pooled as the reruns without its online students."""
    kept = {n: settings for n, settings in students_of(comparison).items() if n not in names}
    pooled = {}
    for setting in comparison["pooled"]:
        rows = [f[setting] for f in kept.values() if setting in f and f[setting]["seeds"] > 1]
        df = sum(r["seeds"] - 1 for r in rows)
        pooled[setting] = {"mAP": {"sd": float(np.sqrt(sum((r["seeds"] - 1) * r["sd"] ** 2 for r in rows) / df))}}
    return {**kept, "pooled": pooled, "comparisons": comparison["comparisons"]}


def summarise(runs: dict[int, dict]) -> dict:
    """Per row and per reference difference: spread() over the teacher seeds' comparisons."""
    rows = {s: rows_of(c) for s, c in runs.items()}
    shared = sorted(set.intersection(*(set(r) for r in rows.values())))
    out_rows = {name: spread([rows[s][name][0] for s in runs], [rows[s][name][1] for s in runs]) for name in shared}
    differences = {}
    names = set.intersection(*(set(n for n, c in comp["comparisons"].items() if c["family"] == "reference")
                               for comp in runs.values()))
    for name in sorted(names):
        figures = [runs[s]["comparisons"][name] for s in runs]
        # the student seeds' share of a difference: s²_pooled (1/n_a + 1/n_b), no b term against a model trained
        # once; the queries are the same in every run, so their bootstrap term is no part of the teachers' spread
        terms = [runs[s]["pooled"][c["setting"]]["mAP"]["sd"] ** 2
                 * (1 / c["seeds_a"] + (1 / c["seeds_b"] if c["seeds_b"] > 1 else 0)) for s, c in zip(runs, figures)]
        d = spread([c["diff"] for c in figures], terms)
        signs = {np.sign(v) for v in d["values"]}
        d.update({"same_sign": len(signs) == 1, "survives": bool(d["low"] > 0 or d["high"] < 0),
                  "marked": [c["marked"] for c in figures], "kind": "vs no_distill" if "no_distill" in name
                  else "vs whitened teacher"})
        differences[name] = d
    return {"rows": out_rows, "differences": differences}


def main(seeds: list[int] = typer.Option([1, 2], help="teacher seeds beside the demo's own (its `seed`)")) -> None:
    """Write benchmarks/results/teacher_seeds.json and print the teacher-level spread of rows and differences."""
    if not (ROOT / "metrics/comparison.json").is_file():
        raise typer.Exit("benchmarks.teacher_seeds needs the demo's results: run `dvc repro` first")
    params = load_params(ROOT / "params.yaml")
    own = params.teacher_seed()
    if own in seeds:
        raise typer.Exit(f"teacher seed {own} is the demo's own: list other seeds")
    online = {name for name, spec in params.students.items() if spec.online}
    runs = {own: without_students(json.loads((ROOT / "metrics/comparison.json").read_text()), online)}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            runs[seed] = rerun(workspace(Path(tmp) / f"teacher-seed-{seed}", seed))
            print(f"teacher seed {seed}: done", flush=True)
    summary = summarise(runs)
    for kind, figures in (("row", summary["rows"]), ("difference", summary["differences"])):
        for name, f in figures.items():
            print(f"{kind} {name}: " + ", ".join(f"{v:.3f}" for v in f["values"])
                  + f"; SD between {f['sd_between']:.3f}, teacher {f['sd_teacher']:.3f}", flush=True)
    sds = [f["sd_teacher"] for f in summary["rows"].values()]
    summary["median_sd_teacher_rows"] = float(np.median(sds))
    print("the report cites it from its next run: dvc repro --force report", flush=True)
    write_result("teacher_seeds", {"teacher_seeds": [own, *seeds], "training_seeds": params.training_seeds(),
                                   "list_sha256": sha256_file(ROOT / "data/prepared/list.csv"),
                                   "settings_sha256": teacher_share_key(params)}, summary, {})


if __name__ == "__main__":
    typer.run(main)
