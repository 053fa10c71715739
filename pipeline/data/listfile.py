"""The image list: a CSV `path,label,split[,camera][,bbox]`, paths relative to the CSV's folder (or absolute).

Splits: `train` (whitening, mining, training), `query`, `gallery`, and `test` (a row that is both
a query and a gallery image; a query is never matched against itself). Optional columns: `camera`
(integer camera id, re-id protocol), `bbox` ("x1 y1 x2 y2", a query crop) and `md5` (the image
file's digest, written by `prepare` so that the list changes whenever an image does). A row's id is its
path, followed by `#bbox=x1,y1,x2,y2` when it has a crop, and ids are unique.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import RdistillError
from pipeline.io import atomic_path

SPLITS = ("train", "query", "gallery", "test")
COLUMNS = ("path", "label", "split")
OPTIONAL = ("camera", "bbox", "md5")

BBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class ImageList:
    """Rows of an image list: ids, resolved paths, integer labels, splits, optional cameras and crops."""

    source: Path
    ids: list[str]
    paths: Sequence[Path]  # a PathColumn when read from a file
    labels: np.ndarray  # (N,) int64, -1 where the CSV has no label
    splits: np.ndarray  # (N,) str
    cameras: np.ndarray | None = None  # (N,) int64, -1 where unknown
    bboxes: list[BBox | None] | None = None

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


def row_id(path: str, bbox: BBox | None) -> str:
    """The id of a row: its path, plus the crop when it has one."""
    return path if bbox is None else f"{path}#bbox={','.join(f'{v:g}' for v in bbox)}"


def _int(value: str, what: str, where: str) -> int:
    if value in ("", None):
        return -1
    try:
        return int(value)
    except ValueError:
        raise RdistillError(f"{where}: {what} {value!r} is not an integer") from None


def _bbox(value: str | None, where: str) -> BBox | None:
    if value in ("", None):
        return None
    parts = value.split()
    try:
        box = tuple(float(v) for v in parts)
    except ValueError:
        box = ()
    if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
        raise RdistillError(f"{where}: bbox {value!r} is not 'x1 y1 x2 y2' with x2 > x1 and y2 > y1")
    return box  # type: ignore[return-value]


class PathColumn(Sequence):
    """The image paths of a list, kept as one array of strings and made `Path`s when indexed
    (1.6M Path objects would cost seconds and a gigabyte at every stage)."""

    def __init__(self, base: Path, files: np.ndarray):
        self.base, self.files = base, files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        file = Path(self.files[index])
        return file if file.is_absolute() else self.base / file


def _int_column(values: np.ndarray, what: str, path: Path) -> np.ndarray:
    """An integer column (empty cells −1); a bad cell is named by its line."""
    try:
        return np.where(values == "", "-1", values).astype(np.int64)
    except ValueError:
        for line, value in enumerate(values.tolist(), start=2):
            _int(value, what, f"{path}:{line}")
        raise


def _first_duplicate(ids: np.ndarray) -> tuple[int, int] | None:
    """(first index, later index) of the duplicate id whose second occurrence comes first, or None."""
    order = np.argsort(ids, kind="stable")
    same = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if not len(same):
        return None
    j = same[np.argmin(order[same + 1])]
    later = order[j + 1]
    first = order[np.searchsorted(ids[order], ids[later], side="left")]
    return int(first), int(later)


def read_list(path: str | Path) -> ImageList:
    """Parse and check an image list CSV column by column; errors name the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise RdistillError(f"{path}: image list not found")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = tuple(next(reader, ()))
        if header[:3] != COLUMNS or any(c not in OPTIONAL for c in header[3:]):
            raise RdistillError(f"{path}: header must be {','.join(COLUMNS)} optionally followed by "
                                f"{' and/or '.join(OPTIONAL)} (got {','.join(header)})")
        rows = [row for row in reader if row]
    if not rows:
        raise RdistillError(f"{path}: image list has no rows")
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    short = np.flatnonzero(lengths < len(header))
    if len(short):  # DictReader's convention: missing trailing cells are empty
        for i in short:
            rows[i] = rows[i] + [""] * (len(header) - len(rows[i]))
    columns = {name: np.array(values, dtype=object) for name, values in zip(header, zip(*rows))}
    del rows
    splits = columns["split"].astype(str)
    unknown = np.flatnonzero(~np.isin(splits, SPLITS))
    if len(unknown):
        raise RdistillError(f"{path}:{unknown[0] + 2}: unknown split {str(splits[unknown[0]])!r} "
                            f"(expected one of {', '.join(SPLITS)})")
    labels = _int_column(columns["label"].astype(str), "label", path)
    cameras = _int_column(columns["camera"].astype(str), "camera", path) if "camera" in header else None
    files = columns["path"]
    ids = files.copy()
    bboxes = None
    if "bbox" in header:
        bboxes = [None] * len(files)
        for i in np.flatnonzero(columns["bbox"] != ""):
            bboxes[i] = _bbox(columns["bbox"][i], f"{path}:{i + 2}")
            ids[i] = row_id(files[i], bboxes[i])
    duplicate = _first_duplicate(ids)
    if duplicate is not None:
        first, later = duplicate
        raise RdistillError(f"{path}:{later + 2}: duplicate row {ids[later]!r} (first on line {first + 2})")
    return ImageList(path, ids.tolist(), PathColumn(path.parent, files), labels, splits, cameras, bboxes)


def write_list(path: str | Path, paths: list[str], labels: list[int], splits: list[str],
               cameras: list[int] | None = None, bboxes: list[BBox | None] | None = None,
               digests: list[str] | None = None) -> None:
    """Write an image list CSV atomically (optional columns only when given)."""
    header = ([*COLUMNS] + (["camera"] if cameras is not None else []) + (["bbox"] if bboxes is not None else [])
              + (["md5"] if digests is not None else []))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, row in enumerate(zip(paths, labels, splits)):
            extra = [] if cameras is None else [cameras[i]]
            if bboxes is not None:
                extra.append("" if bboxes[i] is None else " ".join(f"{v:g}" for v in bboxes[i]))
            if digests is not None:
                extra.append(digests[i])
            writer.writerow([*row, *extra])
