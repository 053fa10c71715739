"""Stage `report`: one markdown table of every metrics/eval*/ JSON."""
from __future__ import annotations

import json
from pathlib import Path

from pipeline import layout
from pipeline.io import atomic_path
from pipeline.report.table import results_table


def _load_all(kind: str) -> dict[str, dict]:
    folder = layout.metrics(kind, "x").parent
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def report(params_path: Path) -> str:
    """Write reports/results.md and return its table."""
    table = results_table(_load_all("eval_teacher"), _load_all("eval"), _load_all("train"))
    with atomic_path(layout.REPORT) as tmp:
        tmp.write_text("# Results (class protocol)\n\n" + table)
    return table
