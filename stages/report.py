"""Stage `report`: one markdown table of every declared model's metrics/eval*/ JSON."""
from __future__ import annotations

import json
from pathlib import Path

from pipeline import layout
from pipeline.io import atomic_path
from pipeline.params import load_params
from pipeline.report.table import results_table, results_title
from pipeline.report.verify import verify_table

VERIFY_HEADING = "## Cached features recomputed on this machine (`rdistill verify`)"


def _load_all(kind: str, declared) -> dict[str, dict]:
    # Only declared models: metrics of a teacher or student removed from params.yaml stay on disk but are stale.
    folder = layout.metrics(kind, "x").parent
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json")) if path.stem in declared}


def report(params_path: Path) -> str:
    """Write reports/results.md and return its table."""
    params = load_params(params_path)
    students = {*params.students, *params.ensembles}
    teachers, evaluated = _load_all("eval_teacher", params.teachers), _load_all("eval", students)
    table = results_table(teachers, evaluated, _load_all("train", students), _load_all("eval_ensemble", {"EM"}))
    checks = _load_all("verify", params.teachers)
    if checks:
        table += f"\n{VERIFY_HEADING}\n\n" + verify_table(checks)
    with atomic_path(layout.REPORT) as tmp:
        tmp.write_text(results_title(teachers, evaluated) + "\n\n" + table)
    return table
