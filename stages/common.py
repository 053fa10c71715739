"""Helpers every stage shares: the prepared list, its labelled training rows, declared names."""
from __future__ import annotations

import numpy as np

from pipeline import layout
from pipeline.data.listfile import ImageList, read_list
from pipeline.data.roots import image_roots
from pipeline.errors import RdistillError
from pipeline.io import sha256_file
from pipeline.local_paths import LOCAL_FILE


def prepared_list(params=None) -> tuple[ImageList, str]:
    """The prepared image list and its sha256; with `params`, its images found under this machine's roots
    (a root the list uses that is not a folder here is an error naming its parameter)."""
    roots = image_roots(params.prepare) if params is not None else None
    image_list = read_list(layout.LIST, roots)
    for name, folder in (image_list.paths.roots or []) if roots is not None else []:
        if name and (folder is None or not folder.is_dir()):
            raise RdistillError(f"{layout.LIST}: its images lie under {name}, which is "
                                f"{'not set' if folder is None else f'{folder}, not a folder'} on this machine; "
                                f"set {name} in params.yaml or in {LOCAL_FILE}")
    return image_list, sha256_file(layout.LIST)


def class_indices(image_list: ImageList, rows: np.ndarray, purpose: str) -> tuple[np.ndarray, int]:
    """Labels of all rows mapped to 0..C−1 by the classes of `rows`; refuses unlabelled rows."""
    labels = image_list.labels[rows]
    if (labels < 0).any():
        row = rows[np.flatnonzero(labels < 0)[0]]
        raise RdistillError(f"{image_list.source}: row {row} ({image_list.ids[row]}) has no label, needed for {purpose}")
    classes = np.unique(labels)
    mapped = np.full(len(image_list), -1, dtype=np.int64)
    mapped[rows] = np.searchsorted(classes, labels)
    return mapped, len(classes)


def declared(table: dict, section: str, name: str, params_path) -> object:
    """The entry `name` of a params table (`teachers` or `students`); a clear error if it is not declared."""
    if name not in table:
        raise RdistillError(f"{params_path}: {section}.{name}: not declared (declared: {', '.join(table) or 'none'})")
    return table[name]
