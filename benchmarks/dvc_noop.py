"""Wall time of a no-op `dvc repro` on the demo (every stage up to date)."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import typer

from benchmarks.common import write_result

ROOT = Path(__file__).resolve().parents[1]


def main(repeat: int = 3, root: Path = typer.Option(ROOT, help="A reproduced demo (default: this repository).")) -> None:
    """Write benchmarks/results/dvc_noop.json (refuses to time a repro that would run stages)."""
    status = json.loads(subprocess.run(["dvc", "status", "--json"], cwd=root, capture_output=True, text=True,
                                       check=True).stdout or "{}")
    status = {stage: why for stage, why in status.items() if why != ["always changed"]}  # data/dvc.yaml:inputs
    if status:
        raise SystemExit(f"dvc_noop: {len(status)} stage(s) are not up to date; run `dvc repro` first")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(["dvc", "repro"], cwd=root, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    stages = len(subprocess.run(["dvc", "stage", "list"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.splitlines())
    write_result("dvc_noop", {"stages": stages, "repeat": repeat, "root": str(root)}, {"seconds": min(times), "all_seconds": times},
                 {"no-op dvc repro < 3 s": min(times) < 3.0})


if __name__ == "__main__":
    typer.run(main)
