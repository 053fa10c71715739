"""Teacher features computed elsewhere (a team's DINOv2 or CLIP features from a GPU cluster), imported by id
into the prepared list's order as an ordinary feature file, block by block."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.data.h5 import feature_writer
from pipeline.data.rows import ArrayRows, FeatureRows, Rows, check_block
from pipeline.errors import RdistillError
from pipeline.io import sha256_file


def source_rows(path: Path, ids_path: Path | None) -> tuple[Rows, list[str], dict]:
    """A rows reader over imported features, their ids and the source's attributes: an HDF5 file in
    rdistill's layout (ids inside), or a .npy (N, D) array with a text file of N ids, one per line."""
    if path.suffix != ".npy":
        reader = FeatureRows(path)
        return reader, list(reader.ids()), reader.attrs
    if ids_path is None:
        raise RdistillError(f"{path}: a .npy file needs its ids (teachers.T.ids: a text file, one id per line)")
    try:
        feats = np.load(path, mmap_mode="r")
        ids = Path(ids_path).read_text().splitlines()
    except (OSError, ValueError) as exc:
        raise RdistillError(f"{path}: unreadable ({exc})".splitlines()[0]) from None
    if feats.ndim != 2 or len(feats) != len(ids):
        raise RdistillError(f"{path}: {feats.shape[0]} rows of features for {len(ids)} ids in {ids_path}")
    return ArrayRows(feats), ids, {}


def list_positions(source_ids: Sequence[str], list_ids: Sequence[str], where: Path, lines: bool) -> np.ndarray:
    """For each prepared-list row, its row in the source; one-line errors for a duplicate, extra or missing id."""
    index: dict[str, int] = {}
    for row, id_ in enumerate(source_ids):
        if id_ in index:
            first, again = (index[id_] + 1, row + 1) if lines else (index[id_], row)
            raise RdistillError(f"{where}: id {id_!r} appears twice ({'lines' if lines else 'rows'} {first} and {again})")
        index[id_] = row
    listed = set(list_ids)
    extra = next((row for row, id_ in enumerate(source_ids) if id_ not in listed), None)
    if extra is not None:
        raise RdistillError(f"{where}: id {source_ids[extra]!r} (row {extra}) is not in the prepared list")
    missing = next((row for row, id_ in enumerate(list_ids) if id_ not in index), None)
    if missing is not None:
        raise RdistillError(f"{where}: the prepared list's id {list_ids[missing]!r} (row {missing}) is missing")
    return np.fromiter((index[id_] for id_ in list_ids), dtype=np.int64, count=len(list_ids))


def import_features(path: str | Path, ids_path: str | Path | None, list_ids: Sequence[str], out: str | Path,
                    attrs: dict, block: int | None = None) -> dict:
    """Write the features of `path` in the order of `list_ids` to the feature file `out`; returns its attributes
    (`attrs` + the source, its sha256 and, when the source records it, the environment that computed it).

    The source's sha256 also stands as `weights_sha256`: downstream stages pair a teacher's whitened
    features and neighbours by that hash, and an imported teacher is known by its source file alone."""
    path, ids_path = Path(path), Path(ids_path) if ids_path else None
    rows, source_ids, source_attrs = source_rows(path, ids_path)
    try:
        positions = list_positions(source_ids, list_ids, ids_path or path, lines=ids_path is not None)
        digest = sha256_file(path)
        attrs = {**attrs, "source": str(path), "source_sha256": digest, "weights_sha256": digest,
                 **({"environment": source_attrs["environment"]} if "environment" in source_attrs else {})}
        ordered = rows.with_rows(positions)
        with feature_writer(out, list(list_ids), attrs) as writer:
            for start, feats in ordered.blocks(block):
                check_block(path, start, feats, positions[start:start + len(feats)])
                writer.write(np.arange(start, start + len(feats)), feats)
    finally:
        rows.close()
    return attrs
