"""Distractor images appended to a gallery, e.g. R1M (revisitop1m.txt: one image path per line)."""
from __future__ import annotations

from pathlib import Path

from pipeline.data.importers import Imported
from pipeline.errors import RdistillError


def import_distractors(list_path: str | Path, root: str | Path | None = None) -> Imported:
    """Gallery-only rows, unlabelled, one per non-empty line of `list_path`; paths relative to `root`
    (default: the list's folder), `.jpg` added to names without a suffix (R1M lists bare names)."""
    list_path = Path(list_path)
    if not list_path.is_file():
        raise RdistillError(f"{list_path}: distractor list not found")
    base = Path(root) if root is not None else list_path.parent
    names = [line.strip() for line in list_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise RdistillError(f"{list_path}: distractor list has no paths")
    paths = [base / (name if Path(name).suffix else f"{name}.jpg") for name in names]
    return Imported(paths=paths, labels=[-1] * len(paths), splits=["gallery"] * len(paths))


def with_gallery_rows(rows: Imported, extra: Imported) -> Imported:
    """`rows` followed by `extra`'s rows as gallery rows; existing gallery positions (ground truth) are unchanged."""
    cameras = None if rows.cameras is None else rows.cameras + [-1] * len(extra.paths)
    bboxes = None if rows.bboxes is None else rows.bboxes + [None] * len(extra.paths)
    return Imported(rows.paths + extra.paths, rows.labels + [-1] * len(extra.paths),
                    rows.splits + ["gallery"] * len(extra.paths), cameras, bboxes, rows.ground_truth)
