"""Stages start fast: a stage module loads the heavy libraries its run uses, and no others."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "faiss", "sklearn", "scipy", "matplotlib", "dvclive", "onnx", "timm")
# what each stage's run needs; anything else in sys.modules after importing it is start-up paid for nothing
NEEDS = {
    "prepare": set(),  # scikit-learn only when the digits are the source, imported there
    "environment": set(),
    "whiten": set(),
    "mine": {"faiss"},  # torch only where the driver lists a GPU, or for mine.index: exact
    "evaluate_teachers": set(),
    "teacher": {"torch", "torchvision"},
    "extract": {"torch", "torchvision"},
    "verify": {"torch", "torchvision"},
    "train": {"torch", "torchvision"},
    "evaluate": {"torch", "torchvision"},
    "export": {"torch", "torchvision"},
    "search": {"torch", "torchvision", "faiss"},
    "report": {"torch", "torchvision", "scipy"},
}


def _loaded_after_import(module: str) -> set[str]:
    probe = f"import sys, stages.cli, stages.{module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", sorted(NEEDS))
def test_a_stage_module_imports_only_the_heavy_libraries_its_run_uses(module):
    assert _loaded_after_import(module) == NEEDS[module]


def test_help_and_a_wrong_parameter_file_answer_without_torch(tmp_path):
    out = subprocess.run([sys.executable, "-c", "import sys; from stages.cli import app; print('torch' in sys.modules)"],
                         cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    wrong = subprocess.run([sys.executable, "-m", "stages.cli", "--params", str(tmp_path / "none.yaml"), "whiten", "t"],
                           cwd=REPO, capture_output=True, text=True)
    assert wrong.returncode == 1 and wrong.stderr.strip().endswith("none.yaml: parameter file not found")
