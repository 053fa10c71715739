"""The image list: a CSV `path,label,split`, paths relative to the CSV's folder (or absolute).

Splits: `train` (whitening, mining, training), `query`, `gallery`, and `test` (a row that is both
a query and a gallery image; a query is never matched against itself).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import RdistillError
from pipeline.io import atomic_path

SPLITS = ("train", "query", "gallery", "test")
COLUMNS = ("path", "label", "split")


@dataclass(frozen=True)
class ImageList:
    """Rows of an image list: ids as written in the CSV, resolved paths, integer labels, splits."""

    source: Path
    ids: list[str]
    paths: list[Path]
    labels: np.ndarray  # (N,) int64, -1 where the CSV has no label
    splits: np.ndarray  # (N,) str

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, *splits: str) -> np.ndarray:
        """Row indices (ascending) whose split is one of `splits`."""
        return np.flatnonzero(np.isin(self.splits, splits))

    def train_rows(self) -> np.ndarray:
        """Rows of the training split."""
        return self.rows("train")

    def query_rows(self) -> np.ndarray:
        """Rows used as queries (`query` and `test`)."""
        return self.rows("query", "test")

    def gallery_rows(self) -> np.ndarray:
        """Rows forming the gallery (`gallery` and `test`)."""
        return self.rows("gallery", "test")


def read_list(path: str | Path) -> ImageList:
    """Parse and check an image list CSV; errors name the file and the row."""
    path = Path(path)
    if not path.is_file():
        raise RdistillError(f"{path}: image list not found")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or tuple(reader.fieldnames[:3]) != COLUMNS:
            raise RdistillError(f"{path}: header must be {','.join(COLUMNS)} (got {reader.fieldnames})")
        ids, labels, splits, seen = [], [], [], {}
        for line, row in enumerate(reader, start=2):
            image_id, label, split = row["path"], row["label"], row["split"]
            if split not in SPLITS:
                raise RdistillError(f"{path}:{line}: unknown split {split!r} (expected one of {', '.join(SPLITS)})")
            if image_id in seen:
                raise RdistillError(f"{path}:{line}: duplicate path {image_id!r} (first on line {seen[image_id]})")
            try:
                labels.append(int(label) if label not in ("", None) else -1)
            except ValueError:
                raise RdistillError(f"{path}:{line}: label {label!r} is not an integer") from None
            seen[image_id] = line
            ids.append(image_id)
            splits.append(split)
    if not ids:
        raise RdistillError(f"{path}: image list has no rows")
    paths = [Path(i) if Path(i).is_absolute() else path.parent / i for i in ids]
    return ImageList(path, ids, paths, np.asarray(labels, dtype=np.int64), np.asarray(splits))


def write_list(path: str | Path, ids: list[str], labels: list[int], splits: list[str]) -> None:
    """Write an image list CSV atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(zip(ids, labels, splits))
