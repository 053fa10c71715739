"""Where each stage reads and writes; dvc.yaml declares the same paths."""
from __future__ import annotations

from pathlib import Path

PREPARED = Path("data/prepared")
LIST = PREPARED / "list.csv"
SKIPPED = PREPARED / "skipped.csv"  # rows left out by prepare.on_bad_image: skip, with the reason
GROUND_TRUTH = PREPARED / "ground_truth.json"  # per-query easy/hard/junk rows (revisited protocol)


INPUTS = Path("data/inputs")  # fingerprints of the images, lists and checkpoints outside DVC's view (committed)
DIGEST_MEMO = Path("data/.local/digests.sqlite")  # this clone's memo of file digests by (size, mtime, inode)


def teacher_inputs(name: str) -> Path:
    """Fingerprint of a teacher's weights or imported feature files."""
    return INPUTS / "teachers" / f"{name}.json"


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


def students(name: str) -> Path:
    """The folder of a student's trained networks, one per training seed."""
    return Path("data/students") / name


def student_weights(name: str, seed: int) -> Path:
    """A student trained with one seed: its record and state dict."""
    return students(name) / f"seed-{seed}.pt"


def trained_seeds(name: str) -> Path:
    """Students already trained, by seed, kept outside the stage's outputs (DVC removes those before a run),
    so that adding a seed trains only that seed; each is reused only while its training key holds."""
    return Path("data/.partial/seeds") / name


def per_query(kind: str, name: str) -> Path:
    """Every query's AP of one evaluated model (kind: student, teacher or ensemble), for paired comparisons."""
    return Path("data/queries") / kind / f"{name}.h5"


def live(kind: str, name: str, seed: int | None = None) -> Path:
    """A training run's DVCLive folder: dvclive/<kind>/<name>[/seed-<seed>] (per-epoch steps, latest summary)."""
    folder = Path("dvclive") / kind / name
    return folder / f"seed-{seed}" if seed is not None else folder


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


ENVIRONMENT = Path("data/environment.json")  # this machine's, never cached or committed (stages/environment.py)
REPORT = Path("reports/results.md")
COMPARISON = Path("metrics/comparison.json")  # the report's intervals and paired differences, for dvc exp show
TEACHER_SEEDS = Path("benchmarks/results/teacher_seeds.json")  # the teachers' share, measured by benchmarks/teacher_seeds
TRADEOFF = Path("plots/tradeoff.png")  # mAP against GFLOPs per image, every model
