"""Stage `report`: one markdown table of every declared model's metrics/eval*/ JSON, their costs, and the
trade-off plot (mAP against GFLOPs per image)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from pipeline import layout
from pipeline.data.h5 import open_complete
from pipeline.evaluate.intervals import query_resamples
from pipeline.io import atomic_path, sha256_file, write_json
from pipeline.models.weights import load_network, load_student
from pipeline.params import Params, load_params
from pipeline.report.comparison import compare_students, students_of
from pipeline.report.cost import model_cost
from pipeline.report.series import loss_series, pr_series
from pipeline.report.table import (caching_note, intervals_note, results_table, results_title, starts_note,
                                   teacher_share_note)
from pipeline.report.tradeoff import tradeoff_plot, tradeoff_points
from pipeline.report.verify import verify_table

VERIFY_HEADING = "## Cached features recomputed on this machine (`rdistill verify`)"


def _load_all(kind: str, declared) -> dict[str, dict]:
    # Only declared models: metrics of a teacher or student removed from params.yaml stay on disk but are stale.
    folder = layout.metrics(kind, "x").parent
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json")) if path.stem in declared}


def _per_query(kind: str, names) -> dict[str, dict]:
    """Every query's AP of the named models that have it (data/queries/<kind>/), by setting."""
    out = {}
    for name in sorted(names):
        path = layout.per_query(kind, name)
        if path.is_file():
            h5, _ = open_complete(path)
            with h5:
                out[name] = {key: h5[key][()] for key in h5 if key not in ("query_rows", "seeds")}
    return out


def online_twins(params: Params) -> dict[str, str | None]:
    """Each online student's cached twin: the first declared student (by name) with its method, teacher and
    recipe changes, trained from the cache; None for an online student without one."""
    return {name: next((n for n, s in sorted(params.students.items()) if not s.online and
                        (s.method, s.teacher, s.recipe) == (spec.method, spec.teacher, spec.recipe)), None)
            for name, spec in sorted(params.students.items()) if spec.online}


def teacher_share_key(params: Params) -> str:
    """What a teachers' share measurement holds for: every setting the results depend on but the teachers' seed
    and the online students (sha256 of their values); benchmarks/teacher_seeds records it."""
    settings = params.model_dump(include={"seed", "teachers", "teacher", "extract", "whiten", "mine", "train",
                                          "ensembles", "evaluate", "report"}, exclude={"teacher": {"seed"}})
    settings["students"] = {n: s.model_dump() for n, s in params.students.items() if not s.online}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def teacher_share(params: Params, list_path: Path) -> dict | None:
    """benchmarks/teacher_seeds' measurement when it was made on this prepared list with these settings, else None.
    Read when present, not a DVC dependency (a project without the benchmark's results runs all the same), so
    a new measurement is cited after `dvc repro --force report`."""
    if not layout.TEACHER_SEEDS.is_file():
        return None
    share = json.loads(layout.TEACHER_SEEDS.read_text())["settings"]
    held = (share.get("list_sha256"), share.get("settings_sha256")) == (sha256_file(list_path), teacher_share_key(params))
    return json.loads(layout.TEACHER_SEEDS.read_text()) if held else None


def costs_of(params: Params, teachers: dict, students: dict) -> dict[str, dict]:
    """Each evaluated teacher's and student's cost per image, as it describes images (scales included);
    teachers whose features were imported have none."""
    torch.manual_seed(params.seed)
    costs = {}
    for name in teachers:
        spec = params.teachers[name]
        if not spec.features:
            net = load_network(layout.teacher_weights(name), spec.arch, spec.dim, spec.pool)
            costs[name] = model_cost(net, spec.image_size, params.extract.scales)
    for name in students:
        net, checkpoint = load_student(layout.student_weights(name, params.training_seeds()[0]))
        costs[name] = model_cost(net, checkpoint["image_size"], params.evaluate.scales)
    return costs


def report(params_path: Path) -> str:
    """Write reports/results.md and plots/tradeoff.png; return the table."""
    params = load_params(params_path)
    students = {*params.students, *params.ensembles}
    teachers, evaluated = _load_all("eval_teacher", params.teachers), _load_all("eval", students)
    ensembles = _load_all("eval_ensemble", {"EM"})
    costs = costs_of(params, teachers, evaluated)
    # one seeded draw of the queries, shared by every comparison (the bootstrap is paired)
    comparison = compare_students(evaluated, _per_query("student", evaluated), _per_query("teacher", teachers),
                                  lambda n: query_resamples(n, params.report.resamples, params.seed),
                                  teachers, ensembles, _per_query("ensemble", ensembles), online_twins(params))
    write_json(layout.COMPARISON, comparison)
    losses = {n: json.loads(layout.plot("loss", n, ".json").read_text()) for n in sorted(students)
              if layout.plot("loss", n, ".json").is_file()}
    curves = {n: json.loads(layout.plot("pr", n, ".json").read_text()) for n in sorted(students)
              if layout.plot("pr", n, ".json").is_file()}
    write_json(layout.plot("compare", "loss", ".json"), loss_series(losses))
    for setting, rows in pr_series(curves, {n: r["teacher"] for n, r in evaluated.items()}).items():
        write_json(layout.plot("compare", f"pr_{setting}", ".json"), rows)
    trained = _load_all("train", students)
    table = results_table(teachers, evaluated, trained, ensembles, costs, comparison)
    table += (intervals_note(comparison, params.report.resamples)
              + teacher_share_note(teacher_share(params, layout.LIST), comparison) + caching_note(comparison, trained)
              + starts_note(trained))
    layout.TRADEOFF.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(layout.TRADEOFF) as tmp:
        tradeoff_plot(tradeoff_points(teachers, evaluated, ensembles, costs), tmp, students_of(comparison))
    table += ("\nCosts per image at the model's input size and scales; ms measured on the machine that ran the "
              f"report ({torch.get_num_threads()} threads).\n\n![mAP against GFLOPs per image](../{layout.TRADEOFF})\n")
    checks = _load_all("verify", params.teachers)
    if checks:
        table += f"\n{VERIFY_HEADING}\n\n" + verify_table(checks)
    with atomic_path(layout.REPORT) as tmp:
        tmp.write_text(results_title(teachers, evaluated) + "\n\n" + table)
    return table
