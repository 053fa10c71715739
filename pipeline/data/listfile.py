"""The image list: a CSV `path,label,split[,camera][,bbox]`, paths relative to the CSV's folder (or absolute).

Splits: `train` (whitening, mining, training), `query`, `gallery`, and `test` (a row that is both
a query and a gallery image; a query is never matched against itself). Optional columns: `camera`
(integer camera id, re-id protocol), `bbox` ("x1 y1 x2 y2", a query crop) and `md5` (the image
file's digest, written by `prepare` so that the list changes whenever an image does). A row's id is its
path, followed by `#bbox=x1,y1,x2,y2` when it has a crop, and ids are unique.
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
OPTIONAL = ("camera", "bbox", "md5")

BBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class ImageList:
    """Rows of an image list: ids, resolved paths, integer labels, splits, optional cameras and crops."""

    source: Path
    ids: list[str]
    paths: list[Path]
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


def read_list(path: str | Path) -> ImageList:
    """Parse and check an image list CSV; errors name the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise RdistillError(f"{path}: image list not found")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = tuple(reader.fieldnames or ())
        if header[:3] != COLUMNS or any(c not in OPTIONAL for c in header[3:]):
            raise RdistillError(f"{path}: header must be {','.join(COLUMNS)} optionally followed by "
                                f"{' and/or '.join(OPTIONAL)} (got {','.join(header)})")
        ids, files, labels, splits, cameras, bboxes, seen = [], [], [], [], [], [], {}
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            if row["split"] not in SPLITS:
                raise RdistillError(f"{where}: unknown split {row['split']!r} (expected one of {', '.join(SPLITS)})")
            bbox = _bbox(row.get("bbox"), where)
            image_id = row_id(row["path"], bbox)
            if image_id in seen:
                raise RdistillError(f"{where}: duplicate row {image_id!r} (first on line {seen[image_id]})")
            seen[image_id] = line
            ids.append(image_id)
            files.append(row["path"])
            labels.append(_int(row["label"], "label", where))
            cameras.append(_int(row.get("camera"), "camera", where))
            splits.append(row["split"])
            bboxes.append(bbox)
    if not ids:
        raise RdistillError(f"{path}: image list has no rows")
    paths = [Path(f) if Path(f).is_absolute() else path.parent / f for f in files]
    return ImageList(path, ids, paths, np.asarray(labels, dtype=np.int64), np.asarray(splits),
                     np.asarray(cameras, dtype=np.int64) if "camera" in header else None,
                     bboxes if "bbox" in header else None)


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
