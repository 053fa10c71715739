"""Stage `report`: one markdown table of every declared model's metrics/eval*/ JSON, their costs, and the
trade-off plot (mAP against GFLOPs per image)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from pipeline import layout
from pipeline.io import atomic_path
from pipeline.models.weights import load_network, load_student
from pipeline.params import Params, load_params
from pipeline.report.cost import model_cost
from pipeline.report.table import results_table, results_title
from pipeline.report.tradeoff import tradeoff_plot, tradeoff_points
from pipeline.report.verify import verify_table

VERIFY_HEADING = "## Cached features recomputed on this machine (`rdistill verify`)"


def _load_all(kind: str, declared) -> dict[str, dict]:
    # Only declared models: metrics of a teacher or student removed from params.yaml stay on disk but are stale.
    folder = layout.metrics(kind, "x").parent
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json")) if path.stem in declared}


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
        net, checkpoint = load_student(layout.student_weights(name))
        costs[name] = model_cost(net, checkpoint["image_size"], params.evaluate.scales)
    return costs


def report(params_path: Path) -> str:
    """Write reports/results.md and plots/tradeoff.png; return the table."""
    params = load_params(params_path)
    students = {*params.students, *params.ensembles}
    teachers, evaluated = _load_all("eval_teacher", params.teachers), _load_all("eval", students)
    ensembles = _load_all("eval_ensemble", {"EM"})
    costs = costs_of(params, teachers, evaluated)
    table = results_table(teachers, evaluated, _load_all("train", students), ensembles, costs)
    layout.TRADEOFF.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(layout.TRADEOFF) as tmp:
        tradeoff_plot(tradeoff_points(teachers, evaluated, ensembles, costs), tmp)
    table += ("\nCosts per image at the model's input size and scales; ms measured on the machine that ran the "
              f"report ({torch.get_num_threads()} threads).\n\n![mAP against GFLOPs per image](../{layout.TRADEOFF})\n")
    checks = _load_all("verify", params.teachers)
    if checks:
        table += f"\n{VERIFY_HEADING}\n\n" + verify_table(checks)
    with atomic_path(layout.REPORT) as tmp:
        tmp.write_text(results_title(teachers, evaluated) + "\n\n" + table)
    return table
