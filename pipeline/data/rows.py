"""Feature files read by rows: consecutive blocks, or any rows gathered, never the whole file.

Every stage that reads features goes through `FeatureRows`, so its memory is bounded by the block
size (`BLOCK_BYTES` of float32 per block) and not by the number of rows. Reads follow the file's
HDF5 chunks: gathered rows are grouped into spans that are read as one slice each, so rows that
lie close together cost one read. Every block is checked for NaN, inf and all-zero rows as it is
read, and an error names the file and the row.

`ArrayRows` offers the same interface over an array already in memory (student features, tests).
"""
from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from pipeline.data.h5 import open_complete
from pipeline.errors import RdistillError

BLOCK_BYTES = 64 << 20  # float32 bytes per block read: 8,192 rows of 2048-d features


def block_rows(dim: int, block_bytes: int = BLOCK_BYTES) -> int:
    """Rows of `dim` float32 values that fit in `block_bytes` (at least 1)."""
    return max(1, block_bytes // (4 * max(dim, 1)))


def check_block(path, first_row: int, feats: np.ndarray, rows: np.ndarray | None = None) -> None:
    """Refuse NaN, inf and all-zero rows, naming the file and the row (`rows`: the file rows of `feats`)."""
    bad = np.flatnonzero(~np.isfinite(feats).all(axis=1))
    zero = np.flatnonzero(~feats.any(axis=1))
    for found, what in ((bad, "holds NaN or inf"), (zero, "is all zeros")):
        if found.size:
            row = int(rows[found[0]]) if rows is not None else first_row + int(found[0])
            raise RdistillError(f"{path}: row {row} {what}")


def spans(sorted_rows: np.ndarray, max_span: int, max_gap: int) -> list[tuple[int, int]]:
    """Cut ascending rows into (lo, hi) position ranges, each covering at most `max_span` file rows
    and never bridging a gap of more than `max_gap` rows (so no chunk is read for nothing)."""
    out, n = [], len(sorted_rows)
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(sorted_rows) > max_gap) + 1, [n]])
    for a, b in zip(cuts[:-1], cuts[1:]):
        lo = int(a)
        while lo < b:
            hi = int(np.searchsorted(sorted_rows[lo:b], sorted_rows[lo] + max_span)) + lo
            out.append((lo, hi))
            lo = hi
    return out


class Rows:
    """What every rows reader shares: positions 0..len−1 mapped to file rows `self.rows`, read through
    `read_file_rows`, in blocks of `self.block` rows. Subclasses set rows, dim and block."""

    rows: np.ndarray
    dim: int
    block: int

    def __len__(self) -> int:
        return len(self.rows)

    def read_file_rows(self, rows: np.ndarray) -> np.ndarray:
        """Features of file rows `rows` (any order, repeats allowed): (len(rows), D) float32."""
        raise NotImplementedError

    def with_rows(self, rows: np.ndarray) -> "Rows":
        """The same source seen through file rows `rows` (a reader shares its open file)."""
        other = copy.copy(self)
        other.rows = np.asarray(rows, dtype=np.int64)
        return other

    def read(self, start: int, stop: int) -> np.ndarray:
        """Features of positions start..stop."""
        return self.read_file_rows(self.rows[start:stop])

    def gather(self, positions: np.ndarray) -> np.ndarray:
        """Features of any positions (any order)."""
        return self.read_file_rows(self.rows[np.asarray(positions, dtype=np.int64)])

    def blocks(self, block: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(first position, features) of consecutive blocks covering every position."""
        block = block or self.block
        for start in range(0, len(self), block):
            yield start, self.read(start, start + block)

    def sample(self, n: int) -> np.ndarray:
        """min(n, all) positions' features, evenly spread; memory: the sample and one block."""
        return self.gather(np.unique(np.linspace(0, len(self) - 1, min(n, len(self))).astype(np.int64)))

    def close(self) -> None:
        """Release what the reader holds."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FeatureRows(Rows):
    """A complete feature file's `features` (or one plane of its `views`) read by rows.

    `rows` (default: every row) chooses which file rows the reader covers; positions 0..len−1
    refer to them in that order. Use as a context manager, or call `close()`.
    """

    def __init__(self, path: str | Path, rows: np.ndarray | None = None, dataset: str = "features",
                 plane: int | None = None, block: int | None = None, check: bool = True):
        self.path = Path(path)
        self.h5, self.attrs = open_complete(self.path)
        try:
            self._select(dataset, plane, rows)
        except RdistillError:
            self.h5.close()
            raise
        self.block = block or block_rows(self.dim)
        chunks = self.data.chunks
        self.chunk = (chunks[0] if plane is None else chunks[1]) if chunks else self.block
        self.check = check

    def _select(self, dataset: str, plane: int | None, rows: np.ndarray | None) -> None:
        """Point the reader at `dataset` (one `plane` of it for views) and `rows`; refuse a bad layout."""
        if dataset not in self.h5:
            raise RdistillError(f"{self.path}: missing dataset {dataset!r}")
        self.data, self.plane = self.h5[dataset], plane
        shape = self.data.shape if plane is None else self.data.shape[1:]
        if len(shape) != 2:
            raise RdistillError(f"{self.path}: {dataset} has shape {self.data.shape}, expected rows × dim")
        self.n_file_rows, self.dim = int(shape[0]), int(shape[1])
        if dataset == "features" and ("ids" not in self.h5 or self.h5["ids"].shape[0] != self.n_file_rows):
            n_ids = self.h5["ids"].shape[0] if "ids" in self.h5 else 0
            raise RdistillError(f"{self.path}: features of shape {tuple(shape)} for {n_ids} ids")
        self.rows = np.arange(self.n_file_rows) if rows is None else np.asarray(rows, dtype=np.int64)
        if len(self.rows) and (self.rows.min() < 0 or self.rows.max() >= self.n_file_rows):
            raise RdistillError(f"{self.path}: asked for row {int(self.rows.max())} of {self.n_file_rows}")

    def ids(self) -> np.ndarray:
        """The ids of the covered rows (object array of str)."""
        ids = self.h5["ids"].asstr()[()]
        return ids if len(self.rows) == self.n_file_rows else ids[self.rows]

    def ids_dataset(self) -> h5py.Dataset:
        """The file's `ids` dataset (every file row), for copying into another file."""
        return self.h5["ids"]

    def view_rows(self) -> np.ndarray | None:
        """The training rows whose augmented views the file holds (None without views)."""
        return self.h5["view_rows"][()] if "view_rows" in self.h5 else None

    @property
    def n_views(self) -> int:
        """V: the plain view plus the augmented views the file holds (1 without views)."""
        return int(self.attrs.get("views", 1)) if "view_rows" in self.h5 else 1

    def views_plane(self, view: int) -> "FeatureRows":
        """A reader over augmented view `view` (1..V−1) of every view row, sharing this open file."""
        other = copy.copy(self)
        other._select("views", view - 1, None)
        if other.dim != self.dim or other.n_file_rows != len(self.h5["view_rows"]):
            raise RdistillError(f"{self.path}: views of {other.n_file_rows} rows of {other.dim}-d features do not "
                                f"match {len(self.h5['view_rows'])} view rows of {self.dim}-d features")
        chunks = other.data.chunks
        other.chunk = chunks[1] if chunks else other.block
        return other

    def read_items(self, items: np.ndarray) -> np.ndarray:
        """Features of items (view · N + row, any order): plain rows from `features`, views from their planes."""
        items = np.asarray(items, dtype=np.int64)
        views, rows = items // self.n_file_rows, items % self.n_file_rows
        out = np.empty((len(items), self.dim), dtype=np.float32)
        for view in np.unique(views):
            chosen = views == view
            if view == 0:
                out[chosen] = self.read_file_rows(rows[chosen])
            else:
                view_rows = self.view_rows()
                where = np.searchsorted(view_rows, rows[chosen]).clip(max=len(view_rows) - 1)
                missing = rows[chosen][view_rows[where] != rows[chosen]]
                if missing.size:
                    raise RdistillError(f"{self.path}: holds no view {view} of row {int(missing[0])}")
                out[chosen] = self.views_plane(int(view)).read_file_rows(where)
        return out

    def read_file_rows(self, rows: np.ndarray) -> np.ndarray:
        """Features of file rows `rows` (any order, repeats allowed), read span by span: (len(rows), D) float32."""
        rows = np.asarray(rows, dtype=np.int64)
        unique, inverse = np.unique(rows, return_inverse=True)
        out = np.empty((len(unique), self.dim), dtype=np.float32)
        for lo, hi in spans(unique, self.block, self.chunk):
            first, last = int(unique[lo]), int(unique[hi - 1]) + 1
            span = self.data[first:last] if self.plane is None else self.data[self.plane, first:last]
            out[lo:hi] = span[unique[lo:hi] - first]
        if self.check:
            check_block(self.path, 0, out, unique)
        return out[inverse] if len(unique) != len(rows) or not np.array_equal(unique, rows) else out

    def close(self) -> None:
        """Release the file."""
        self.h5.close()


def read_all(reader: Rows) -> np.ndarray:
    """Every covered row in one (len, D) float32 array, filled block by block (no second copy)."""
    out = np.empty((len(reader), reader.dim), dtype=np.float32)
    for start, block in reader.blocks():
        out[start:start + len(block)] = block
    return out


class ArrayRows(Rows):
    """The rows-reader interface over an (N, D) array in memory (e.g. a student's features)."""

    def __init__(self, features: np.ndarray, rows: np.ndarray | None = None, block: int | None = None):
        self.features = features
        self.rows = np.arange(len(features)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.dim = features.shape[1]
        self.block = block or block_rows(self.dim)

    def read_file_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows `rows` of the array (any order) as contiguous float32."""
        return np.ascontiguousarray(self.features[rows], dtype=np.float32)


class SubsetRows(ArrayRows):
    """A reader of a whole list's `n_rows` rows of which only `listed` (ascending) were described: row i of
    `features` is list row listed[i]. Only listed rows may be read."""

    def __init__(self, features: np.ndarray, listed: np.ndarray, n_rows: int):
        super().__init__(features, np.arange(n_rows))
        self.listed = np.asarray(listed, dtype=np.int64)

    def read_file_rows(self, rows: np.ndarray) -> np.ndarray:
        """Features of list rows `rows` (each one of the listed rows)."""
        return super().read_file_rows(np.searchsorted(self.listed, rows))
