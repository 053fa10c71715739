"""The same tuning budget for every method: three values of its main knob, three tuning seeds, judged on validation.

Each method's main knob is its loss weight where it has one (the weight beside the supervised term), else the
learning rate of its recipe (no_distill, csd, d3still, mixup_ap, whiten_mtd, contrastive). The three values are
the current one and a tenth / ten times it (weights) or a third / three times it (learning rates). Every value
trains the demo's student with the tuning seeds (by default 0, 1, 2; the demo reports with other seeds) in a
copy of the demo workspace that reuses its cached teacher features, neighbours and whitening, and is scored
on the validation split: the asymmetric mAP for methods that learn the teacher's space, else the symmetric,
each the mean over the seeds with its Student-t interval. Writes benchmarks/results/tuning.json and prints
the value chosen for each method.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import typer
import yaml

from benchmarks.common import write_result
from benchmarks.views import stage
from pipeline.evaluate.intervals import seed_interval
from pipeline.methods import METHODS
from pipeline.params import load_params

ROOT = Path(__file__).resolve().parents[1]
DATA = ("data/prepared", "data/teachers", "data/features", "data/whitening", "data/whitened", "data/neighbours")


def knob(params, name: str) -> tuple[str, float]:
    """A student's main knob, ("weight" | "lr", its current value), from the demo's resolved params."""
    from stages.students import student
    spec = student(params, name, ROOT / "params.yaml")
    if hasattr(spec.settings, "weight"):
        return "weight", float(spec.settings.weight)
    return "lr", float(spec.recipe.lr)


def candidates(kind: str, value: float) -> list[float]:
    """Three values around the current one: ×0.1, ×1, ×10 for a weight, ×1/3, ×1, ×3 for a learning rate."""
    step = 10.0 if kind == "weight" else 3.0
    return [float(f"{value / step:.3g}"), value, float(f"{value * step:.3g}")]


def workspace(folder: Path, name: str, kind: str, value: float, seeds: list[int]) -> Path:
    """A copy of the demo's code, cached data and parameters training student `name` alone at one knob value."""
    for entry in ("pipeline", "stages"):
        shutil.copytree(ROOT / entry, folder / entry, ignore=shutil.ignore_patterns("__pycache__"))
    for entry in DATA:
        shutil.copytree(ROOT / entry, folder / entry)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["seeds"] = seeds
    section = "ensembles" if name in params.get("ensembles", {}) else "students"
    spec = params[section][name]
    if kind == "weight":
        method = spec["method"]
        params["train"][method] = {**(params["train"].get(method) or {}), "weight": value}
    else:
        spec["recipe"] = {**(spec.get("recipe") or {}), "lr": value}
    params["students"] = {name: spec} if section == "students" else {}
    params["ensembles"] = {name: spec} if section == "ensembles" else {}
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def validation_score(folder: Path, name: str, setting: str) -> dict:
    """A student's validation mAP in `setting`: mean over the seeds, its 95% Student-t interval, each seed's."""
    by_seed = json.loads((folder / f"metrics/eval/{name}.json").read_text())["by_seed"]
    per_seed = np.array([scores["validation"][setting]["mAP"] for scores in by_seed.values()])
    mean, low, high = seed_interval(per_seed)
    return {"mAP": mean, "low": low, "high": high, "per_seed": per_seed.tolist()}


def main(seeds: list[int] = typer.Option([0, 1, 2], help="tuning seeds (the demo reports with other seeds)"),
         only: list[str] = typer.Option([], help="students to tune (default: every demo student)")) -> None:
    """Write benchmarks/results/tuning.json and print each student's three values and the chosen one."""
    if not (ROOT / "data/neighbours/resnet50.h5").is_file():
        raise typer.Exit("benchmarks.tuning needs the demo's cached features: run `dvc repro` first")
    params = load_params(ROOT / "params.yaml")
    reported = params.training_seeds()
    if set(seeds) & set(reported):
        raise typer.Exit(f"tuning seeds {seeds} overlap the reported train.seeds {reported}")
    names = [n for n in [*params.students, *params.ensembles] if not only or n in only]
    names = [n for n in names if not getattr(params.students.get(n), "online", False)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            method = (params.students.get(name) or params.ensembles[name]).method
            setting = "asymmetric" if METHODS[method].teacher_space else "symmetric"
            kind, current = knob(params, name)
            scores = {}
            for value in candidates(kind, current):
                folder = workspace(Path(tmp) / f"{name}-{value}", name, kind, value, seeds)
                train_s = stage(folder, "train", name)
                stage(folder, "evaluate", name)
                scores[str(value)] = {**validation_score(folder, name, setting), "train_s": train_s}
                shutil.rmtree(folder)
            chosen = max(scores, key=lambda v: scores[v]["mAP"])
            results[name] = {"method": method, "knob": kind, "current": current, "setting": setting,
                             "scores": scores, "chosen": float(chosen)}
            print(f"{name} ({setting}, {kind}): " + ", ".join(
                f"{v} {s['mAP']:.3f} [{s['low']:.3f}, {s['high']:.3f}]" for v, s in scores.items())
                + f" -> {chosen}", flush=True)
    write_result("tuning", {"seeds": seeds, "reported_seeds": reported, "students": names}, results, {})


if __name__ == "__main__":
    typer.run(main)
