"""Where each stage reads and writes; dvc.yaml declares the same paths."""
from __future__ import annotations

from pathlib import Path

PREPARED = Path("data/prepared")
LIST = PREPARED / "list.csv"
SKIPPED = PREPARED / "skipped.csv"  # rows left out by prepare.on_bad_image: skip, with the reason
GROUND_TRUTH = PREPARED / "ground_truth.json"  # per-query easy/hard/junk rows (revisited protocol)


def teacher_weights(name: str) -> Path:
    """State dict of a resolved or trained teacher."""
    return Path("data/teachers") / f"{name}.pt"


def raw_features(name: str) -> Path:
    """Multi-scale GeM features of every listed image by a teacher."""
    return Path("data/features") / f"{name}.h5"


def whitening(name: str) -> Path:
    """A teacher's learned whitening (mean, projection, eigenvalues)."""
    return Path("data/whitening") / f"{name}.h5"


def whitened_features(name: str) -> Path:
    """A teacher's whitened features of every listed image."""
    return Path("data/whitened") / f"{name}.h5"


def neighbours(name: str) -> Path:
    """Top-K neighbours of every training image under a teacher's whitened features."""
    return Path("data/neighbours") / f"{name}.h5"


def student_weights(name: str) -> Path:
    """A trained student's state dict."""
    return Path("data/students") / f"{name}.pt"


def metrics(kind: str, name: str) -> Path:
    """A metrics JSON, e.g. metrics/eval/csd.json."""
    return Path("metrics") / kind / f"{name}.json"


def plot(kind: str, name: str, suffix: str) -> Path:
    """A plot file, e.g. plots/pr/csd.json or plots/grid/csd.png."""
    return Path("plots") / kind / f"{name}{suffix}"


def export(name: str, suffix: str) -> Path:
    """An exported student: exports/S.onnx or exports/S.pt (TorchScript)."""
    return Path("exports") / f"{name}{suffix}"


def search_cache(name: str) -> Path:
    """`rdistill search`'s gallery descriptors and index for a student (outside the pipeline's outputs)."""
    return Path("data/search") / name


def scratch(stage: str, name: str) -> Path:
    """Resumable partial work of a stage, outside its declared outputs."""
    return Path("data/.partial") / f"{stage}-{name}"


REPORT = Path("reports/results.md")
TRADEOFF = Path("plots/tradeoff.png")  # mAP against GFLOPs per image, every model
