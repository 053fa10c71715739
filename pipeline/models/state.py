"""State dicts read from files and loaded strictly, with errors naming the file and key at fault
(shared by the torchvision and timm loaders; imports no model code)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipeline.errors import RdistillError


def load_state_dict(path: str | Path) -> dict:
    """torch.load with weights_only=True; a clear error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise RdistillError(f"{path}: weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe pickles
        raise RdistillError(f"{path}: not a loadable state_dict ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    if not isinstance(state, dict):
        raise RdistillError(f"{path}: expected a state_dict, found {type(state).__name__}")
    return state


def named(keys: list[str], limit: int = 4) -> str:
    """Up to `limit` keys and how many more."""
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_strict(module: nn.Module, state: dict, source: str) -> None:
    """load_state_dict(strict) whose error names the unmatched keys (missing, unexpected, or of another shape)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        parts = ([f"{len(missing)} key(s) of {type(module).__name__} missing ({named(missing)})"] if missing else []) + \
                ([f"{len(extra)} unexpected ({named(extra)})"] if extra else [])
        raise RdistillError(f"{source}: {'; '.join(parts)} (another architecture, or a layout rdistill does not read)")
    for key in own:
        if tuple(state[key].shape) != tuple(own[key].shape):
            raise RdistillError(f"{source}: key {key!r} has shape {tuple(state[key].shape)}, "
                                f"expected {tuple(own[key].shape)}")
    module.load_state_dict(state)
