"""Checks of imported rows before any stage uses them: images that decode, paths inside the root."""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from pipeline.data.decode import load_rgb
from pipeline.errors import RdistillError


def undecodable(paths: list[Path]) -> dict[int, str]:
    """Rows whose image cannot be decoded, with the reason."""
    bad = {}
    for row, path in enumerate(tqdm(paths, desc="check images", unit="img", mininterval=1.0)):
        try:
            load_rgb(path)
        except RdistillError as exc:
            bad[row] = str(exc)
    return bad


def outside_root(paths: list[Path], root: Path) -> int | None:
    """The first row whose path resolves outside `root`, or None."""
    root = root.resolve()
    for row, path in enumerate(paths):
        if not path.resolve().is_relative_to(root):
            return row
    return None
