"""Retrieval networks: a torchvision classification backbone or a timm model + GeM (or the model's own
pooling) + optional linear + l2n."""
from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn

from pipeline.errors import RdistillError
from pipeline.models.pooling import L2N, GeM, l2n
from pipeline.models.timm_trunk import TimmTrunk, is_timm


def backbone_trunk(arch: str) -> nn.Module:
    """The convolutional trunk of a torchvision classifier (feature map output), random init."""
    try:
        classifier = torchvision.models.get_model(arch, weights=None)
    except ValueError:
        known = ", ".join(sorted(torchvision.models.list_models(module=torchvision.models)))
        raise RdistillError(f"unknown architecture {arch!r}; torchvision offers: {known}") from None
    return trunk_of(classifier, arch)


def trunk_of(classifier: nn.Module, arch: str) -> nn.Module:
    """Strip pooling and classifier from a torchvision classification model."""
    if hasattr(classifier, "features") and isinstance(classifier.features, nn.Module):
        if arch.startswith("densenet"):  # densenet applies its last ReLU in forward()
            return nn.Sequential(classifier.features, nn.ReLU(inplace=False))
        return classifier.features
    if hasattr(classifier, "fc") and hasattr(classifier, "layer4"):  # ResNet family
        children = dict(classifier.named_children())
        return nn.Sequential(*[m for name, m in children.items() if name not in ("avgpool", "fc")])
    raise RdistillError(f"architecture {arch!r}: no convolutional trunk found (expected .features or a ResNet)")


def last_downsampling(trunk: nn.Module, probe: Tensor) -> list[nn.Conv2d]:
    """The stride-2 convolutions of the block that halves the feature map last: found by running `probe`
    through the trunk's sequence of blocks (descending into nested sequences), e.g. a ResNet's last
    stage's first block (its conv and its shortcut), a MobileNet's last stride-2 inverted residual."""
    block, x = trunk, probe
    while isinstance(block, nn.Sequential):
        last = None
        for child in block:
            y = child(x)
            if y.shape[-1] < x.shape[-1]:
                last, halved_input = child, x
            x = y
        if last is None:
            return []
        block, x = last, halved_input
    return [m for m in block.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]


def set_last_stride(trunk: nn.Module, arch: str, stride: int) -> None:
    """Give the trunk's last downsampling `stride` (D3still's students: 1, a final feature map twice as large)."""
    if stride == 2:
        return
    probe = torch.zeros(1, 3, 64, 64)
    before = trunk.eval()(probe).shape[-1]
    for conv in last_downsampling(trunk, probe):
        conv.stride = (stride, stride)
    if trunk(probe).shape[-1] != 2 * before:
        raise RdistillError(f"architecture {arch}: last_stride {stride} is not supported (its last downsampling "
                            f"is no stride-2 convolution)")


class RetrievalNet(nn.Module):
    """trunk -> GeM(p) -> optional linear -> l2-normalised descriptor (GeM, Radenović et al., TPAMI 2018)."""

    def __init__(self, arch: str, dim: int | None = None, p: float = 3.0, last_stride: int = 2, pool: str = "gem",
                 prenorm: bool = False):
        super().__init__()
        self.arch = arch
        if is_timm(arch):
            if last_stride != 2:
                raise RdistillError(f"architecture {arch}: last_stride {last_stride} is for torchvision models")
            self.trunk = TimmTrunk(arch, pool)
        else:
            if pool != "gem":
                raise RdistillError(f"architecture {arch}: pool {pool} needs a timm model (timm/<name>); "
                                    f"torchvision trunks are pooled with gem")
            self.trunk = backbone_trunk(arch)
            with torch.no_grad():
                set_last_stride(self.trunk, arch, last_stride)
            self.trunk.train()
        self.pool = GeM(p) if pool == "gem" else nn.Identity()
        channels = self._trunk_channels()
        # prenorm: the linear layer sees the l2-normalised pooled vector (a cirtorch whitening layer)
        linear = nn.Linear(channels, dim) if dim else nn.Identity()
        self.head = nn.Sequential(L2N(), linear) if dim and prenorm else linear
        self.dim = dim or channels

    def _trunk_channels(self) -> int:
        was_training = self.trunk.training
        self.trunk.eval()
        with torch.no_grad():
            channels = self.trunk(torch.zeros(1, 3, 64, 64)).shape[1]
        self.trunk.train(was_training)
        return channels

    def forward(self, x: Tensor) -> Tensor:
        return l2n(self.head(self.pool(self.trunk(x))))


def create(arch: str, dim: int | None = None, last_stride: int = 2, pool: str = "gem", gem_p: float = 3.0,
           prenorm: bool = False) -> RetrievalNet:
    """A retrieval network for a torchvision architecture name or timm/<name> (last_stride 1: the last
    downsampling removed; pool: gem, or a timm model's CLS token or own pooling; prenorm: l2n before the
    linear layer)."""
    return RetrievalNet(arch, dim, gem_p, last_stride=last_stride, pool=pool, prenorm=prenorm)
