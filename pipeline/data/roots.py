"""Dataset roots: the folders a prepared list's ids are relative to, named by the parameter that sets each.

An image's id is its path relative to its source's root, with `/` separators (plus `#bbox=…` for a
cropped query), so it is the same on every machine; the list's `root` column names the parameter
(`prepare.root`, `prepare.train_from.root`, `prepare.gallery_from.root`) and each machine resolves it
from params.yaml and its own machine.yaml. Rows without a root are images `prepare` wrote itself,
relative to data/prepared.
"""
from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import RdistillError

EXPORTED = ("sklearn_digits", "mnist")  # sources whose images prepare writes under data/prepared


def source_root(p) -> Path | None:
    """The folder a source's image ids are relative to: `root`, or its list's folder; None for images that
    prepare exports under data/prepared (the digits, MNIST)."""
    if getattr(p, "source", None) in EXPORTED:
        return None
    if p.root:
        return Path(p.root)
    return Path(p.list).parent if p.list else None


def image_roots(prepare) -> dict[str, Path]:
    """Every root a prepared list may name, as this machine resolves it."""
    roots = {}
    for key, section in (("prepare.root", prepare), ("prepare.train_from.root", prepare.train_from),
                         ("prepare.gallery_from.root", prepare.gallery_from)):
        root = source_root(section) if section is not None else None
        if root is not None:
            roots[key] = root
    return roots


def relative_ids(paths: list[str | Path], root: Path) -> list[str]:
    """Each path (absolute, or relative to the working folder) relative to `root` with `/` separators (string
    work, no file-system call per row); an error naming the first that lies outside."""
    base = os.path.abspath(root)
    prefix = base.rstrip(os.sep) + os.sep
    out = []
    for path in paths:
        full = os.path.abspath(path)
        if not full.startswith(prefix):
            raise RdistillError(f"{path}: lies outside the dataset root {root}")
        out.append(full[len(prefix):] if os.sep == "/" else full[len(prefix):].replace(os.sep, "/"))
    return out
