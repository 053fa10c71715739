"""The supervised objective on labels alone: teachers trained here, the no-distill student, supervised terms."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.losses.classification import normalised_softmax


class ClassificationObjective(nn.Module):
    """Normalised softmax over learned class proxies (labels only, no teacher)."""

    def __init__(self, n_classes: int, dim: int, temperature: float):
        super().__init__()
        self.proxies = nn.Parameter(torch.randn(n_classes, dim) / dim ** 0.5)
        self.temperature = temperature

    def forward(self, q: Tensor, labels: Tensor, items: Tensor) -> Tensor:
        return normalised_softmax(q, self.proxies, labels, self.temperature)
