"""How many augmented views are worth caching: the demo's CSD and D3still students distilled from the resnet50
teacher's features cached with V = 1, 2, 4, 8 views per training image, three seeds each, beside their online
twins at each V (the plain image as often, fresh crops instead of the V − 1 cached ones).

Runs the real stages (extract, whiten, mine, train, evaluate) in a copy of the demo workspace that reuses
its prepared list and trained teacher, so only what V changes is recomputed. Reports, per V, each student's
validation mAP (symmetric and asymmetric) with a Student-t interval over the seeds, the cache's size on
disk, the extraction's seconds, and the size the same cache would take at GLDv2 scale (1.6M images ×
V × 2,048 float32). Writes benchmarks/results/views.json.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import typer
import yaml

from benchmarks.common import write_result
from pipeline.evaluate.intervals import seed_interval

ROOT = Path(__file__).resolve().parents[1]
STUDENTS = ("csd", "d3still", "csd_online", "d3still_online")
GLDV2_IMAGES, GLDV2_DIM = 1_600_000, 2048


def workspace(folder: Path, views: int, seeds: list[int]) -> Path:
    """A copy of the demo's code and parameters with its prepared list and resnet50 teacher, at `views`."""
    for entry in ("pipeline", "stages"):
        shutil.copytree(ROOT / entry, folder / entry, ignore=shutil.ignore_patterns("__pycache__"))
    for entry in ("data/prepared", "data/teachers"):
        shutil.copytree(ROOT / entry, folder / entry)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["teachers"] = {"resnet50": params["teachers"]["resnet50"]}
    params["extract"]["views"] = views
    params["train"]["seeds"] = seeds
    params["students"] = {name: params["students"][name] for name in STUDENTS}
    params["ensembles"] = {}
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def stage(folder: Path, *args: str) -> float:
    """Seconds one `rdistill` command takes in `folder` (an error stops the benchmark with its output)."""
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(folder)}
    result = subprocess.run([sys.executable, "-m", "stages.cli", *args], cwd=folder, env=env, capture_output=True,
                            text=True)
    if result.returncode:
        raise typer.Exit(f"rdistill {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def validation_figures(folder: Path, student: str) -> dict:
    """A student's validation mAP per setting: the mean over seeds with its 95% Student-t interval."""
    by_seed = json.loads((folder / f"metrics/eval/{student}.json").read_text())["by_seed"]
    out = {}
    for setting in ("symmetric", "asymmetric"):
        per_seed = np.array([scores["validation"][setting]["mAP"] for scores in by_seed.values()])
        mean, low, high = seed_interval(per_seed)
        out[setting] = {"mAP": mean, "low": low, "high": high, "per_seed": per_seed.tolist()}
    return out


def main(views: list[int] = typer.Option([1, 2, 4, 8], help="views per training image to compare"),
         seeds: list[int] = typer.Option([0, 1, 2], help="training seeds of every student")) -> None:
    """Write benchmarks/results/views.json and print one line per V."""
    if not (ROOT / "data/teachers/resnet50.pt").is_file():
        raise typer.Exit("benchmarks.views needs the demo's trained teacher: run `dvc repro` first")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for v in views:
            folder = workspace(Path(tmp) / f"views-{v}", v, seeds)
            extract_s = stage(folder, "extract", "resnet50")
            for command in (("whiten", "resnet50"), ("mine", "resnet50")):
                stage(folder, *command)
            train_s = {name: stage(folder, "train", name) for name in STUDENTS}
            for name in STUDENTS:
                stage(folder, "evaluate", name)
            size = (folder / "data/features/resnet50.h5").stat().st_size
            n_train = sum(1 for line in (folder / "data/prepared/list.csv").read_text().splitlines()[1:]
                          if line.split(",")[2] == "train")
            rows[v] = {"cache_mb": size / 2**20, "extract_s": extract_s, "train_s": train_s,
                       "gldv2_cache_gb": GLDV2_IMAGES * v * GLDV2_DIM * 4 / 1e9, "training_images": n_train,
                       "validation": {name: validation_figures(folder, name) for name in STUDENTS}}
            figures = rows[v]["validation"]
            print(f"V={v}: cache {rows[v]['cache_mb']:.1f} MB, extract {extract_s:.0f} s; " + "; ".join(
                f"{name} sym {f['symmetric']['mAP']:.3f} [{f['symmetric']['low']:.3f}, {f['symmetric']['high']:.3f}] "
                f"asym {f['asymmetric']['mAP']:.3f} [{f['asymmetric']['low']:.3f}, {f['asymmetric']['high']:.3f}]"
                for name, f in figures.items()), flush=True)
    write_result("views", {"views": views, "seeds": seeds, "students": list(STUDENTS), "teacher": "resnet50"},
                 {str(v): row for v, row in rows.items()}, {})


if __name__ == "__main__":
    typer.run(main)
