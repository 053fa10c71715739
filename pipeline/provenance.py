"""What made a file: library versions and content hashes, stored as HDF5 attributes."""
from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

import PIL
from PIL import features as pil_features

from pipeline.data.rows import FeatureRows
from pipeline.errors import RdistillError

LIBRARIES = ("torch", "torchvision", "faiss-gpu", "h5py", "numpy", "rdistill")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape features."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def source_sha256() -> str:
    """sha256 of this installation's own code (every .py file of pipeline/ and stages/, by relative path)."""
    import hashlib
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(p for folder in ("pipeline", "stages") for p in (root / folder).rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def environment(device: str) -> dict[str, str]:
    """What shapes computed features besides code and weights: libraries, python, image decoder, `device` (in words)."""
    jpeg = pil_features.version("jpg") or "none"
    turbo = " (libjpeg-turbo)" if pil_features.check_feature("libjpeg_turbo") else ""
    return {**library_versions(), "python": platform.python_version(),
            "decoder": f"Pillow {PIL.__version__}, libjpeg {jpeg}{turbo}", "device": device}


def require_attrs(path, attrs: dict, keys: tuple[str, ...]) -> dict:
    """The provenance attributes `keys` of a file; refuses a file that lacks one."""
    missing = [k for k in keys if k not in attrs]
    if missing:
        raise RdistillError(f"{path}: provenance attribute {missing[0]!r} missing; rerun the stage that writes it")
    return {k: attrs[k] for k in keys}


def require_match(path, attrs: dict, key: str, expected) -> None:
    """Refuse an input whose provenance attribute `key` differs from what the stage expects."""
    found = attrs.get(key)
    if found != expected:
        raise RdistillError(f"{path}: provenance {key}={found!r} does not match the expected {expected!r}; "
                            f"rerun the stage that writes it")


def open_checked_features(path, list_sha: str, teacher: str | None = None, rows=None) -> FeatureRows:
    """A FeatureRows reader of a feature file whose provenance matches the prepared list (and teacher)."""
    reader = FeatureRows(path, rows)
    try:
        require_match(path, reader.attrs, "list_sha256", list_sha)
        if teacher is not None:
            require_match(path, reader.attrs, "teacher", teacher)
    except Exception:
        reader.close()
        raise
    return reader
