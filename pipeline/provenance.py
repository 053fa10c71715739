"""What made a file: library versions and content hashes, stored as HDF5 attributes."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

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
