"""Loading network weights without ever downloading: local state_dicts and the local torch cache."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torchvision
from torch import nn

from pipeline.errors import RdistillError
from pipeline.io import atomic_path
from pipeline.models.backbones import RetrievalNet, create, trunk_of
from pipeline.models.checkpoints import by_order, from_cirtorch, is_cirtorch, is_efficientnet_pytorch, unwrapped
from pipeline.models.pooling import GeM
from pipeline.models.state import load_state_dict, load_strict
from pipeline.models.timm_trunk import TimmTrunk, cached_pretrained, load_timm_weights, timm_state

log = logging.getLogger(__name__)


GEM_P = "pool.p"  # a teacher file's learned GeM exponent, stored only when it is not 3


def network_state(net: RetrievalNet) -> dict:
    """A network's state dict as teacher files hold it: its GeM exponent added when learned (not 3)."""
    state = net.state_dict()
    if isinstance(net.pool, GeM) and net.pool.p != 3.0:
        state[GEM_P] = torch.tensor([net.pool.p])
    return state


def network_from_state(state: dict, arch: str, dim: int | None, pool: str, source: str) -> RetrievalNet:
    """A RetrievalNet filled from rdistill keys (a linear layer after an l2n when the keys say so, a learned
    GeM exponent); `dim` None takes the linear layer's from the state."""
    state = dict(state)
    p = state.pop(GEM_P, None)
    prenorm = "head.1.weight" in state
    head = state.get("head.1.weight" if prenorm else "head.weight")
    if dim is None and head is not None:
        dim = int(head.shape[0])
    net = create(arch, dim, pool=pool, gem_p=3.0 if p is None else float(p.reshape(-1)[0]), prenorm=prenorm)
    load_strict(net, state, source)
    return net


def load_network(path: str | Path, arch: str, dim: int | None, pool: str = "gem") -> RetrievalNet:
    """A RetrievalNet of `arch` (+ linear to `dim`, pooled by `pool`) filled from the state_dict file at `path`."""
    return network_from_state(load_state_dict(path), arch, dim, pool, str(path))


def pretrained_network(arch: str, dim: int | None, pool: str, weights: str) -> RetrievalNet:
    """A teacher from its `weights`: a retrieval checkpoint (rdistill's, or cirtorch's with its learned GeM p
    and whitening layer; wrappers and a `module.` prefix unwrapped), a classifier's or timm state dict, or a
    torchvision weights name from the local cache. One line says what a retrieval checkpoint brought."""
    path = Path(weights)
    if not names_file(weights):
        net = create(arch, dim, pool=pool)
        load_pretrained(net, weights)
        return net
    state = unwrapped(timm_state(path))
    if is_cirtorch(state):
        retrieval = from_cirtorch(state)
        if dim is not None and retrieval.whiten_dim != dim:
            raise RdistillError(f"{path}: its whitening layer gives {retrieval.whiten_dim or 'no'} dimensions, not "
                                f"the teacher's dim {dim}; leave dim unset to use the checkpoint's own")
        log.info("%s: a retrieval checkpoint: GeM p = %s, %s", path,
                 "3 (none learned)" if retrieval.gem_p is None else f"{retrieval.gem_p:.4g} (learned)",
                 f"its whitening layer to {retrieval.whiten_dim} dimensions" if retrieval.whiten_dim else "no whitening layer")
        p = {} if retrieval.gem_p is None else {GEM_P: torch.tensor([retrieval.gem_p])}
        return network_from_state({**retrieval.state, **p}, arch, None, pool, str(path))
    if any(k.startswith("trunk.") for k in state):
        return network_from_state(state, arch, dim, pool, str(path))
    net = create(arch, dim, pool=pool)
    load_pretrained(net, weights, state)
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


CLASSIFIERS = ("fc.", "classifier.", "head.", "_fc.", "whiten.", "pool.p")  # what a start leaves out, for the log


def names_file(weights: str) -> bool:
    """Whether `weights` names a checkpoint file rather than a torchvision name or `pretrained`."""
    path = Path(weights)
    return path.suffix in (".pt", ".pth", ".bin", ".tar", ".safetensors") or path.exists()


def initialise(net: RetrievalNet, init: str) -> str:
    """Fill a new network's trunk from `init` (a checkpoint file of any layout rdistill reads, a torchvision
    weights name from the local cache, or `pretrained` for timm models): the classifier, a whitening layer
    and a learned GeM p are left out, and the embedding layer keeps the initialisation it was created with
    (the training seed's). Returns one line naming what was loaded, dropped and newly initialised."""
    new = [k for k in net.state_dict() if not k.startswith("trunk.")]
    if init == "none":
        return "random initialisation"
    loaded = len((net.trunk.model if isinstance(net.trunk, TimmTrunk) else net.trunk).state_dict())
    if not names_file(init):
        load_pretrained(net, init)
        return f"{loaded} trunk tensors from {init}; new: {', '.join(new) or 'none'}"
    path = Path(init)
    state = unwrapped(timm_state(path))
    if is_cirtorch(state):
        state = from_cirtorch(state).state
    if isinstance(net.trunk, TimmTrunk) and is_efficientnet_pytorch(state):
        state = by_order(state, trunk_model_state(net), str(path))
    dropped = [k for k in state if k.startswith(CLASSIFIERS) or (k.startswith("head") and "trunk." not in k)]
    if any(k.startswith("trunk.") for k in state):
        dropped = [k for k in state if not k.startswith("trunk.")]
        load_strict(net.trunk, {k.removeprefix("trunk."): v for k, v in state.items() if k.startswith("trunk.")},
                    str(path))
    else:
        load_pretrained(net, init, state)
    return f"{loaded} trunk tensors from {path}; dropped: {', '.join(dropped) or 'none'}; new: {', '.join(new) or 'none'}"


def trunk_model_state(net: RetrievalNet) -> dict:
    """The timm model's own state dict names, classifier included (what a full timm checkpoint lists)."""
    import timm
    return timm.create_model(net.arch.removeprefix("timm/"), pretrained=False).state_dict()


def paper_init(arch: str) -> str:
    """The ImageNet weights the papers start a student of `arch` from: torchvision's default weights name, or
    `pretrained` for a timm model."""
    if arch.startswith("timm/"):
        return "pretrained"
    try:
        return str(torchvision.models.get_model_weights(arch).DEFAULT)
    except (ValueError, KeyError, AttributeError):
        raise RdistillError(f"train.preset paper: no ImageNet weights known for {arch}; set train.student.init") from None


def load_pretrained(net: RetrievalNet, weights: str, state: dict | None = None) -> None:
    """Fill `net` from a RetrievalNet state_dict, a classifier state_dict file, or a cached torchvision name;
    a timm trunk from a .safetensors / .pt file or (`pretrained`) the local Hugging Face cache (`state`: the
    file's state dict, when already read)."""
    if isinstance(net.trunk, TimmTrunk):
        path = cached_pretrained(net.trunk, net.arch) if weights == "pretrained" else Path(weights)
        if state is None and not path.is_file():
            raise RdistillError(f"{path}: weights file not found")
        state = unwrapped(timm_state(path)) if state is None else state
        if is_efficientnet_pytorch(state):
            state = by_order(state, trunk_model_state(net), str(path))
        if any(k.startswith("trunk.") for k in state):
            load_strict(net, state, str(path))
        else:
            load_timm_weights(net.trunk, state, str(path))
        return
    if state is not None:
        source = weights
    elif Path(weights).suffix in (".pt", ".pth") or Path(weights).exists():
        state, source = unwrapped(load_state_dict(weights)), weights
    else:
        state, source = cached_torchvision_state(weights), weights
    if any(k.startswith("trunk.") for k in state):
        load_strict(net, state, source)
        return
    classifier = torchvision.models.get_model(net.arch, weights=None)
    load_strict(classifier, state, source)
    net.trunk.load_state_dict(trunk_of(classifier, net.arch).state_dict())
