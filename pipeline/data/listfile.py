"""The image list: a CSV `path,label,split[,camera][,bbox][,md5][,root]`, paths relative to the CSV's folder
(or absolute), or to the dataset root that the row's `root` column names (pipeline.data.roots).

Splits: `train` (whitening, mining, training), `query`, `gallery`, `test` (a row that is both
a query and a gallery image; a query is never matched against itself), and `val` (held out of
training for choosing settings, scored like `test` rows: each a query against the others). Optional columns: `camera`
(integer camera id, re-id protocol), `bbox` ("x1 y1 x2 y2", a query crop) and `md5` (the image
file's digest, written by `prepare` so that the list changes whenever an image does) and `root` (the
parameter naming the folder the path is relative to, e.g. `prepare.root`; empty: the CSV's folder). A
row's id is its path, followed by `#bbox=x1,y1,x2,y2` when it has a crop, and ids are unique.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline.errors import RdistillError
from pipeline.io import atomic_path

SPLITS = ("train", "query", "gallery", "test", "val")
COLUMNS = ("path", "label", "split")
OPTIONAL = ("camera", "bbox", "md5", "root")

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

    def validation(self) -> "ImageList":
        """This list with the validation rows as its test rows (and every other row out of evaluation)."""
        from dataclasses import replace
        return replace(self, splits=np.where(self.splits == "val", "test", "train"))


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

    def __init__(self, base: Path, files: np.ndarray, root_codes: np.ndarray | None = None,
                 roots: list[tuple[str, Path | None]] | None = None):
        self.base, self.files = base, files
        self.root_codes, self.roots = root_codes, roots  # per row, an index into (root name, folder or None)

    def __len__(self) -> int:
        return len(self.files)

    def strings(self) -> list[str]:
        """Every path as a string, without a Path object per row (the list of a list without roots)."""
        if self.root_codes is not None:
            return [str(self[i]) for i in range(len(self))]
        base = str(self.base)
        return [os.path.join(base, f) for f in self.files.tolist()]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        file = Path(self.files[index])
        if file.is_absolute():
            return file
        if self.root_codes is None:
            return self.base / file
        name, folder = self.roots[self.root_codes[index]]
        if folder is None:
            raise RdistillError(f"row {index} ({self.files[index]}): its root {name} is not set here; set it in "
                                f"params.yaml or this machine's machine.yaml")
        return folder / file


def _int_column(column: pa.ChunkedArray, what: str, path: Path) -> np.ndarray:
    """An integer column (empty cells −1); a bad cell is named by its line."""
    try:
        return pc.cast(pc.if_else(pc.equal(column, ""), "-1", column), pa.int64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        for line, value in enumerate(column.to_pylist(), start=2):
            _int(value, what, f"{path}:{line}")
        raise


def _first_duplicate(ids: pa.Array) -> tuple[int, int] | None:
    """(first index, later index) of the duplicate id whose second occurrence comes first, or None."""
    codes = pc.dictionary_encode(ids).indices.to_numpy()
    first_of = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
    first_of[codes[::-1]] = np.arange(len(codes))[::-1]  # the lowest index of each id
    later = np.flatnonzero(first_of[codes] != np.arange(len(codes)))
    return None if not len(later) else (int(first_of[codes[later[0]]]), int(later[0]))


def read_list(path: str | Path, roots: dict[str, Path] | None = None) -> ImageList:
    """Parse and check an image list CSV column by column (Arrow's CSV reader); errors name the file and the line.
    `roots`: the folders that the `root` column names (pipeline.data.roots.image_roots)."""
    path = Path(path)
    if not path.is_file():
        raise RdistillError(f"{path}: image list not found")
    with open(path, newline="", encoding="utf-8") as f:
        header = tuple(next(csv.reader(f), ()))
    if header[:3] != COLUMNS or any(c not in OPTIONAL for c in header[3:]):
        raise RdistillError(f"{path}: header must be {','.join(COLUMNS)} optionally followed by "
                            f"{' and/or '.join(OPTIONAL)} (got {','.join(header)})")
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header}, strings_can_be_null=False))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise RdistillError(f"{path}: not a readable list ({str(exc).splitlines()[0]})") from None
    if table.num_rows == 0:
        raise RdistillError(f"{path}: image list has no rows")
    split_codes = pc.dictionary_encode(table["split"].combine_chunks())
    names = np.asarray(split_codes.dictionary.to_pylist(), dtype=str)
    splits = names[split_codes.indices.to_numpy()]
    unknown = np.flatnonzero(~np.isin(splits, SPLITS))
    if len(unknown):
        raise RdistillError(f"{path}:{unknown[0] + 2}: unknown split {str(splits[unknown[0]])!r} "
                            f"(expected one of {', '.join(SPLITS)})")
    labels = _int_column(table["label"], "label", path)
    cameras = _int_column(table["camera"], "camera", path) if "camera" in header else None
    files = table["path"].combine_chunks()
    ids = files
    bboxes = None
    if "bbox" in header:
        cells = table["bbox"].to_numpy(zero_copy_only=False)
        bboxes = [None] * len(cells)
        boxed = np.flatnonzero(cells != "")
        if len(boxed):
            names = files.to_numpy(zero_copy_only=False).copy()
            for i in boxed:
                bboxes[i] = _bbox(cells[i], f"{path}:{i + 2}")
                names[i] = row_id(names[i], bboxes[i])
            ids = pa.array(names, type=pa.string())
    duplicate = _first_duplicate(ids)
    if duplicate is not None:
        first, later = duplicate
        raise RdistillError(f"{path}:{later + 2}: duplicate row {ids[later].as_py()!r} (first on line {first + 2})")
    root_codes = root_table = None
    if "root" in header:
        encoded = pc.dictionary_encode(table["root"].combine_chunks())
        root_codes = encoded.indices.to_numpy()
        root_table = [(name, path.parent if name == "" else (roots or {}).get(name))
                      for name in encoded.dictionary.to_pylist()]
    paths = PathColumn(path.parent, files.to_numpy(zero_copy_only=False), root_codes, root_table)
    return ImageList(path, ids.to_pylist(), paths, labels, splits, cameras, bboxes)


def write_list(path: str | Path, paths: list[str], labels: list[int], splits: list[str],
               cameras: list[int] | None = None, bboxes: list[BBox | None] | None = None,
               digests: list[str] | None = None, roots: list[str] | None = None) -> None:
    """Write an image list CSV atomically (optional columns only when given)."""
    header = ([*COLUMNS] + (["camera"] if cameras is not None else []) + (["bbox"] if bboxes is not None else [])
              + (["md5"] if digests is not None else []) + (["root"] if roots is not None else []))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, row in enumerate(zip(paths, labels, splits)):
            extra = [] if cameras is None else [cameras[i]]
            if bboxes is not None:
                extra.append("" if bboxes[i] is None else " ".join(f"{v:g}" for v in bboxes[i]))
            if digests is not None:
                extra.append(digests[i])
            if roots is not None:
                extra.append(roots[i])
            writer.writerow([*row, *extra])
