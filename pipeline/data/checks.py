"""Checks of imported rows before any stage uses them: images that decode, paths inside the root."""
from __future__ import annotations

import hashlib
from pathlib import Path

from tqdm import tqdm

from pipeline.data.decode import load_rgb
from pipeline.errors import RdistillError


def check_images(paths: list[Path]) -> tuple[dict[int, str], list[str]]:
    """Decode every image: rows that fail, with the reason, and each image file's md5 ('' where it failed)."""
    bad, digests = {}, []
    for row, path in enumerate(tqdm(paths, desc="check images", unit="img", mininterval=1.0)):
        try:
            load_rgb(path)
            with open(path, "rb") as f:
                digests.append(hashlib.file_digest(f, "md5").hexdigest())
        except RdistillError as exc:
            bad[row] = str(exc)
            digests.append("")
    return bad, digests


def outside_root(paths: list[Path], root: Path) -> int | None:
    """The first row whose path resolves outside `root`, or None."""
    root = root.resolve()
    for row, path in enumerate(paths):
        if not path.resolve().is_relative_to(root):
            return row
    return None
