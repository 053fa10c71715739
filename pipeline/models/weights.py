"""Loading network weights without ever downloading: local state_dicts and the local torch cache."""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from pipeline.errors import RdistillError
from pipeline.io import atomic_path
from pipeline.models.backbones import RetrievalNet, create, trunk_of
from pipeline.models.state import load_state_dict, load_strict
from pipeline.models.timm_trunk import TimmTrunk, cached_pretrained, load_timm_weights, timm_state


def load_network(path: str | Path, arch: str, dim: int | None, pool: str = "gem") -> RetrievalNet:
    """A RetrievalNet of `arch` (+ linear to `dim`, pooled by `pool`) filled from the state_dict file at `path`."""
    net = create(arch, dim, pool=pool)
    load_strict(net, load_state_dict(path), str(path))
    return net


def load_student(path: str | Path) -> tuple[RetrievalNet, dict]:
    """A trained student (data/students/S.pt) and its checkpoint's record: arch, dim, image size, method, teachers."""
    checkpoint = load_state_dict(path)
    missing = [k for k in ("arch", "dim", "image_size", "state_dict") if k not in checkpoint]
    if missing:
        raise RdistillError(f"{path}: not a student checkpoint (no {missing[0]!r}); rerun its train stage")
    net = create(checkpoint["arch"], checkpoint["dim"], checkpoint.get("last_stride", 2), checkpoint.get("pool", "gem"))
    load_strict(net, checkpoint["state_dict"], str(path))
    return net, checkpoint


def save_student(path: str | Path, net: nn.Module, record: dict) -> None:
    """Write a trained student as load_student reads it: its record (arch, dim, image size, method, teachers)
    and the network's weights, atomically."""
    with atomic_path(path) as tmp:
        torch.save({**record, "state_dict": net.cpu().state_dict()}, tmp)


def cached_torchvision_state(weights_name: str) -> dict:
    """State dict of a torchvision weights enum (e.g. ResNet50_Weights.IMAGENET1K_V2) from the local cache only."""
    try:
        weights = torchvision.models.get_weight(weights_name)
    except (ValueError, KeyError, AttributeError):
        raise RdistillError(f"weights {weights_name!r}: neither a file nor a torchvision weights name") from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cached.is_file():
        raise RdistillError(f"weights {weights_name!r}: not in the local torch cache ({cached}); "
                            f"rdistill never downloads, place the file there or give a state_dict path")
    return load_state_dict(cached)


def load_pretrained(net: RetrievalNet, weights: str) -> None:
    """Fill `net` from a RetrievalNet state_dict, a classifier state_dict file, or a cached torchvision name;
    a timm trunk from a .safetensors / .pt file or (`pretrained`) the local Hugging Face cache."""
    if isinstance(net.trunk, TimmTrunk):
        path = cached_pretrained(net.trunk, net.arch) if weights == "pretrained" else Path(weights)
        if not path.is_file():
            raise RdistillError(f"{path}: weights file not found")
        state = timm_state(path)
        if any(k.startswith("trunk.") for k in state):
            load_strict(net, state, str(path))
        else:
            load_timm_weights(net.trunk, state, str(path))
        return
    if Path(weights).suffix in (".pt", ".pth") or Path(weights).exists():
        state, source = load_state_dict(weights), weights
    else:
        state, source = cached_torchvision_state(weights), weights
    if any(k.startswith("trunk.") for k in state):
        load_strict(net, state, source)
        return
    classifier = torchvision.models.get_model(net.arch, weights=None)
    load_strict(classifier, state, source)
    net.trunk.load_state_dict(trunk_of(classifier, net.arch).state_dict())
