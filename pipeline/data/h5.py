"""HDF5 feature files: `features` (N, D) float32, `ids` (N,), provenance in attributes.

With augmented views (consistent teaching) a file also holds `views` (V − 1, M, D): views 1..V−1
of the M training rows listed in `view_rows`.

Files are written under a temporary name and renamed when complete; a file without the
`complete` attribute (or one that h5py cannot open) is refused with its name.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from pipeline.errors import RdistillError
from pipeline.io import atomic_path


ID_BLOCK = 65536  # ids copied from another file at a time


class _RowWriter:
    """Writes feature rows into a chunked dataset created on the first write."""

    def __init__(self, h5: h5py.File, n_rows: int, chunk_rows: int, view_rows: np.ndarray | None, n_views: int):
        self.h5, self.n_rows, self.chunk_rows, self.dataset = h5, n_rows, chunk_rows, None
        self.view_rows, self.n_views, self.views = view_rows, n_views, None

    def write(self, rows: np.ndarray, features: np.ndarray) -> None:
        """Store `features` (len(rows), D) at `rows`."""
        if self.dataset is None:
            dim = features.shape[1]
            self.dataset = self.h5.create_dataset(
                "features", shape=(self.n_rows, dim), dtype="float32",
                chunks=(min(self.chunk_rows, self.n_rows), dim))
        order = np.argsort(rows)
        self.dataset[rows[order]] = features[order].astype(np.float32, copy=False)

    def write_view(self, view: int, rows: np.ndarray, features: np.ndarray) -> None:
        """Store view `view` (≥ 1) of `rows` (all in view_rows)."""
        if self.views is None:
            m, dim = len(self.view_rows), features.shape[1]
            self.views = self.h5.create_dataset("views", shape=(self.n_views - 1, m, dim), dtype="float32",
                                                chunks=(1, min(self.chunk_rows, m), dim))
        where = np.searchsorted(self.view_rows, rows)
        order = np.argsort(where)
        self.views[view - 1, where[order]] = features[order].astype(np.float32, copy=False)


@contextlib.contextmanager
def feature_writer(path: str | Path, ids, attrs: dict, chunk_rows: int = 512,
                   view_rows: np.ndarray | None = None, n_views: int = 1) -> Iterator[_RowWriter]:
    """Open a temporary HDF5 for N = len(ids) rows (and n_views − 1 views of `view_rows`); publish it when the block succeeds.

    ids: a list of str, or another file's `ids` dataset (copied as it is).
    """
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            if isinstance(ids, h5py.Dataset):  # another file's ids, copied block by block
                out = h5.create_dataset("ids", shape=ids.shape, dtype=h5py.string_dtype())
                for start in range(0, len(ids), ID_BLOCK):
                    out[start:start + ID_BLOCK] = ids[start:start + ID_BLOCK]
            else:
                h5.create_dataset("ids", data=np.asarray(ids, dtype=object), dtype=h5py.string_dtype())
            for key, value in attrs.items():
                h5.attrs[key] = _encode(value)
            has_views = n_views > 1 and view_rows is not None and len(view_rows) > 0
            if has_views:
                h5.create_dataset("view_rows", data=np.asarray(view_rows, dtype=np.int64))
            writer = _RowWriter(h5, len(ids), chunk_rows, np.asarray(view_rows) if has_views else None, n_views)
            yield writer
            if writer.dataset is None or (has_views and writer.views is None):
                raise RdistillError(f"{path}: no features were written")
            h5.attrs["complete"] = True


def write_arrays(path: str | Path, arrays: dict[str, np.ndarray], attrs: dict) -> None:
    """Write named arrays and attributes to one HDF5 file atomically."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        for name, array in arrays.items():
            if array.dtype.kind in "OU":
                h5.create_dataset(name, data=array.astype(object), dtype=h5py.string_dtype())
            else:
                h5.create_dataset(name, data=array)
        for key, value in attrs.items():
            h5.attrs[key] = _encode(value)
        h5.attrs["complete"] = True


def open_complete(path: str | Path) -> tuple[h5py.File, dict]:
    """A complete HDF5 file opened for reading, and its decoded attributes; one-line errors naming the file
    when it is missing, unreadable or lacks the `complete` mark."""
    path = Path(path)
    try:
        h5 = h5py.File(path, "r")
    except FileNotFoundError:
        raise RdistillError(f"{path}: file not found; run the stage that writes it") from None
    except OSError as exc:
        raise RdistillError(f"{path}: unreadable HDF5 file ({exc})") from None
    attrs = {k: decode_attr(v) for k, v in h5.attrs.items()}
    if not attrs.get("complete"):
        h5.close()
        raise RdistillError(f"{path}: incomplete file (no 'complete' mark); rerun the stage that writes it")
    return h5, attrs


def read_arrays(path: str | Path, names: list[str]) -> tuple[dict[str, np.ndarray], dict]:
    """Read named arrays and attributes from a complete HDF5 file."""
    h5, attrs = open_complete(path)
    try:
        with h5:
            missing = [n for n in names if n not in h5]
            if missing:
                raise RdistillError(f"{path}: missing dataset {missing[0]!r}")
            arrays = {n: h5[n].asstr()[()] if h5[n].dtype.kind == "O" else h5[n][()] for n in names}
    except OSError as exc:
        raise RdistillError(f"{path}: unreadable HDF5 file ({exc})") from None
    return arrays, attrs


def _encode(value):
    """HDF5 attributes hold scalars and strings; store containers as JSON."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    if value is None:
        return "null"
    return value


def decode_attr(value):
    """Undo _encode: JSON strings back to containers, numpy scalars to Python."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and (value == "null" or value.startswith(("[", "{"))):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value
