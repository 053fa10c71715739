"""The embedded demo dataset: the handwritten digits that scikit-learn ships in its wheel."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.data.importers import Imported
from pipeline.errors import RdistillError


def export_digits(out_dir: str | Path, n_train: int, seed: int, limit: int | None = None) -> Imported:
    """Write the digits as 8-bit grayscale PNGs under out_dir/images; returns their rows.

    `n_train` images (stratified by class, seeded) form the training split, the rest `test`.
    """
    from sklearn.datasets import load_digits  # here: scikit-learn's import (1 s) is paid only by the digits

    out_dir = Path(out_dir)
    digits = load_digits()
    images, labels = digits.images, digits.target
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    if n_train >= len(labels):
        raise RdistillError(f"prepare.n_train: {n_train} leaves no test images out of {len(labels)}")
    is_train = _stratified_mask(labels, n_train, np.random.default_rng(seed))
    out = Imported([], [], [])
    for index, (image, label) in enumerate(zip(images, labels)):
        path = out_dir / "images" / str(label) / f"{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        # sklearn stores 4-bit intensities (0..16) with ink high; scale to 0..255, ink dark on white.
        pixels = 255 - np.clip(np.rint(image * 255 / 16), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(path)
        out.paths.append(path)
        out.labels.append(int(label))
        out.splits.append("train" if is_train[index] else "test")
    return out


def _stratified_mask(labels: np.ndarray, n_train: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask choosing about n_train rows with every class in proportion."""
    mask = np.zeros(len(labels), dtype=bool)
    order = rng.permutation(len(labels))
    # Interleave classes so that the first n_train picks of the sorted order are stratified.
    rank_in_class = np.empty(len(labels))
    for cls in np.unique(labels):
        members = order[labels[order] == cls]
        rank_in_class[members] = (np.arange(len(members)) + 0.5) / len(members)
    mask[np.argsort(rank_in_class, kind="stable")[:n_train]] = True
    return mask
