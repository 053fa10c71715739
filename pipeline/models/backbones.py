"""Retrieval networks: any torchvision classification backbone + GeM + optional linear + l2n."""
from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn

from pipeline.errors import RdistillError
from pipeline.models.pooling import GeM, l2n


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


class RetrievalNet(nn.Module):
    """trunk -> GeM(p) -> optional linear -> l2-normalised descriptor (METHODS §1)."""

    def __init__(self, arch: str, dim: int | None = None, p: float = 3.0):
        super().__init__()
        self.arch = arch
        self.trunk = backbone_trunk(arch)
        self.pool = GeM(p)
        channels = self._trunk_channels()
        self.head = nn.Linear(channels, dim) if dim else nn.Identity()
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


def create(arch: str, dim: int | None = None) -> RetrievalNet:
    """A retrieval network for a torchvision architecture name."""
    return RetrievalNet(arch, dim)
