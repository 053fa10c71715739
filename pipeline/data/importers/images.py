"""Importers that read images directly: a class-per-folder tree and the MNIST-family IDX files."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.data.importers import Imported
from pipeline.errors import RdistillError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def stratified_train_mask(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """About `fraction` of every class, chosen at random, marked True."""
    mask = np.zeros(len(labels), dtype=bool)
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        mask[members[:round(len(members) * fraction)]] = True
    return mask


def import_folder(root: str | Path, train_fraction: float, seed: int) -> Imported:
    """One sub-folder per class (sorted names -> labels 0..C−1); a stratified `train_fraction` is train, the rest test."""
    root = Path(root)
    if not root.is_dir():
        raise RdistillError(f"{root}: image folder not found")
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    if not classes:
        raise RdistillError(f"{root}: no class sub-folders")
    paths, labels = [], []
    for label, folder in enumerate(classes):
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                paths.append(path)
                labels.append(label)
    if not paths:
        raise RdistillError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its sub-folders")
    mask = stratified_train_mask(np.asarray(labels), train_fraction, np.random.default_rng(seed))
    return Imported(paths, labels, ["train" if m else "test" for m in mask])


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (MNIST family), optionally gzip-compressed."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise RdistillError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise RdistillError(f"{path}: {body.size} values for declared shape {shape}")
    return body.reshape(shape)


def _idx_file(root: Path, stem: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise RdistillError(f"{root / stem}: IDX file not found (also tried .gz)")


def import_mnist(root: str | Path, out_dir: str | Path, limit: int | None = None) -> Imported:
    """MNIST-family IDX files (train-* -> train, t10k-* -> test), exported as PNG files under out_dir/images."""
    root, out_dir = Path(root), Path(out_dir)
    out = Imported([], [], [])
    for prefix, split in (("train", "train"), ("t10k", "test")):
        images = read_idx(_idx_file(root, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_idx_file(root, f"{prefix}-labels-idx1-ubyte"))
        if len(images) != len(labels):
            raise RdistillError(f"{root}: {prefix} has {len(images)} images but {len(labels)} labels")
        count = len(images) if limit is None else min(limit, len(images))
        for i in range(count):
            path = out_dir / "images" / split / f"{i:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i], mode="L").save(path)
            out.paths.append(path)
            out.labels.append(int(labels[i]))
            out.splits.append(split)
    return out
