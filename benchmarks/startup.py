"""Start-up of every stage command beside the imports it cannot avoid (`import torch`, `import torch, torchvision`).

A stage's start-up is timed through the real entry point: `rdistill --params <missing file> STAGE ARG` imports
the CLI and the stage module, then stops at the parameter file, before any work (exit 1, one line);
`environment` reads no parameters, so its figure is its whole run (it only describes the machine). Each
figure is the best of `repeat` runs, so that the page cache and a busy core count as little as they can.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

from benchmarks.common import write_result

ROOT = Path(__file__).resolve().parents[1]
# every command dvc.yaml runs (and `search`), with the stage module it imports
STAGES = {"prepare": ("prepare",), "teacher": ("teacher", "t"), "extract": ("extract", "t"),
          "environment": ("environment",), "verify": ("verify", "t"), "whiten": ("whiten", "t"),
          "mine": ("mine", "t"), "train": ("train", "s"), "evaluate": ("evaluate", "s"),
          "export": ("export", "s"), "evaluate_teachers": ("evaluate-teacher", "t"), "report": ("report",),
          "search": ("search", "s", "--gallery", ".", "--query", "q.png")}
HEAVY = ("torch", "torchvision", "torch._dynamo", "faiss", "sklearn", "scipy", "matplotlib", "dvclive", "onnx", "timm")
BASELINES = {"python": "pass", "import torch": "import torch", "import torch, torchvision": "import torch, torchvision"}


def _best(argv: list[str], repeat: int, expect_stderr: str | None = None) -> float:
    times = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as scratch:  # `environment` writes data/environment.json
            start = time.perf_counter()
            done = subprocess.run(argv, cwd=scratch, env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
        if expect_stderr is not None and expect_stderr not in done.stderr:
            raise SystemExit(f"startup: {' '.join(argv)} did not stop at the parameter file: {done.stderr.strip()[-300:]}")
    return min(times)


def heavy_imports(module: str) -> list[str]:
    """The heavy libraries that importing stages.<module> (and the CLI) loads."""
    probe = (f"import sys, stages.cli, stages.{module}; "
             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    return subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.split()


def main(repeat: int = 5) -> None:
    """Write benchmarks/results/startup.json: seconds to start each stage, and each baseline."""
    baselines = {name: _best([sys.executable, "-c", code], repeat) for name, code in BASELINES.items()}
    missing = Path(tempfile.gettempdir()) / "rdistill-startup-no-such-params.yaml"
    stages = {}
    for module, args in STAGES.items():
        seconds = _best([sys.executable, "-m", "stages.cli", "--params", str(missing), *args], repeat,
                        expect_stderr=None if module == "environment" else "parameter file not found")
        imports = heavy_imports(module)
        needs = ("import torch, torchvision" if "torchvision" in imports else
                 "import torch" if "torch" in imports else "python")
        stages[args[0]] = {"seconds": seconds, "imports": imports, "baseline": needs,
                           "over_baseline_seconds": seconds - baselines[needs]}
    torch_stages = [s for s in stages.values() if "torch" in s["imports"]]
    other = [s for s in stages.values() if "torch" not in s["imports"]]
    targets = {
        "torch stages within 0.5 s of the imports they need": all(s["over_baseline_seconds"] <= 0.5 for s in torch_stages),
        "torch stages within 0.5 s of `import torch`": all(s["seconds"] - baselines["import torch"] <= 0.5
                                                           for s in torch_stages),
        "stages without torch under 1.5 s": all(s["seconds"] < 1.5 for s in other),
    }
    write_result("startup", {"repeat": repeat}, {"baselines": baselines, "stages": stages}, targets)


if __name__ == "__main__":
    typer.run(main)
