"""Resumable progress kept outside a stage's declared outputs.

DVC deletes a stage's outputs before running it, and an output marked `persist` or `cache: false`
would switch off its run-cache; so partial work lives in a scratch folder (data/.partial/<stage>-<name>)
that DVC does not know about. Each chunk is published by an atomic rename, so a chunk file exists
only when complete; a manifest records what the chunks were computed from, and a mismatch clears them.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from pipeline.data.h5 import read_arrays, write_arrays
from pipeline.io import atomic_path

MANIFEST = "manifest.json"


class ChunkStore:
    """Numbered chunks of named arrays in a scratch folder, valid for one manifest `key`."""

    def __init__(self, folder: str | Path, key: dict):
        self.folder = Path(folder)
        self.key = json.loads(json.dumps(key, sort_keys=True, default=str))
        manifest = self.folder / MANIFEST
        if manifest.is_file() and json.loads(manifest.read_text()) != self.key:
            self.clear()  # computed from other inputs or settings: start over
        self.folder.mkdir(parents=True, exist_ok=True)
        if not manifest.is_file():
            with atomic_path(manifest) as tmp:
                tmp.write_text(json.dumps(self.key, sort_keys=True))

    def _path(self, index: int) -> Path:
        return self.folder / f"chunk-{index:06d}.h5"

    def done(self) -> set[int]:
        """Indices of complete chunks."""
        return {int(p.stem.split("-")[1]) for p in self.folder.glob("chunk-*.h5")}

    def save(self, index: int, arrays: dict[str, np.ndarray]) -> None:
        """Publish chunk `index` atomically."""
        write_arrays(self._path(index), arrays, {})

    def load(self, index: int, names: list[str]) -> dict[str, np.ndarray]:
        """The arrays of a complete chunk."""
        return read_arrays(self._path(index), names)[0]

    def file(self, name: str) -> Path:
        """A named file beside the chunks (e.g. a trained index or a training checkpoint)."""
        return self.folder / name

    def clear(self) -> None:
        """Remove the scratch folder and everything in it."""
        shutil.rmtree(self.folder, ignore_errors=True)
