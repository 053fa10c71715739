"""Whether a second run of the demo reproduces the first: two project folders, each after `dvc repro`
(e.g. one with other CPU kernels: ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA).

For every student row of the first run's metrics/comparison.json: does the second run's mean fall
inside the first run's 95% interval, and does a difference marked in either run (its interval
excluding 0) keep its sign. Writes benchmarks/results/<name>.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer

RESULTS = Path(__file__).resolve().parent / "results"


def compare(first: dict, second: dict) -> dict:
    """Row by row: the second run's mean against the first's interval, and the marked differences' signs."""
    rows, flips = [], []
    for name, settings in sorted(first.items()):
        for setting, figures in sorted(settings.items()):
            other = second.get(name, {}).get(setting)
            if other is None:
                continue
            inside = figures["low"] <= other["mAP"] <= figures["high"]
            rows.append({"student": name, "setting": setting, "first": figures["mAP"], "first_low": figures["low"],
                         "first_high": figures["high"], "second": other["mAP"], "inside": inside})
            for key in ("vs_no_distill", "vs_teacher"):
                a, b = figures.get(key), other.get(key)
                if a and b and (a["excludes_zero"] or b["excludes_zero"]):
                    flips.append({"student": name, "setting": setting, "against": key, "first": a["diff"],
                                  "second": b["diff"], "first_marked": a["excludes_zero"],
                                  "second_marked": b["excludes_zero"], "sign_changed": (a["diff"] > 0) != (b["diff"] > 0)})
    return {"rows": len(rows), "second_mean_inside_first_interval": sum(r["inside"] for r in rows),
            "marked_differences": len(flips), "marked_sign_changes": sum(f["sign_changed"] for f in flips),
            "by_row": rows, "marked": flips}


def main(first: Path = typer.Argument(..., help="project folder of the first run"),
         second: Path = typer.Argument(..., help="project folder of the second run"),
         name: str = typer.Option("reproduced", help="results file: benchmarks/results/<name>.json")) -> None:
    """Compare two reproduced demos' intervals and write the result."""
    result = compare(*(json.loads((folder / "metrics/comparison.json").read_text()) for folder in (first, second)))
    result.update({"first": str(first), "second": str(second)})
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(f"{result['second_mean_inside_first_interval']} of {result['rows']} rows' means inside the first run's "
               f"intervals; {result['marked_sign_changes']} of {result['marked_differences']} marked differences "
               f"changed sign")


if __name__ == "__main__":
    typer.run(main)
