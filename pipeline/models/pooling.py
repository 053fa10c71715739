"""Global descriptor maths (GeM, Radenović et al., TPAMI 2018): GeM pooling and l2 normalisation as plain functions."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def gem(x: Tensor, p: float = 3.0, eps: float = 1e-6) -> Tensor:
    """Generalised-mean pooling: (mean_hw clamp(x, eps)^p)^(1/p). x: (B, C, H, W) -> (B, C)."""
    return x.clamp_min(eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


def l2n(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Rows scaled to unit l2 norm. x: (B, D)."""
    return F.normalize(x, p=2.0, dim=-1, eps=eps)


class GeM(nn.Module):
    """GeM pooling with a fixed exponent p (GeM, Radenović et al., TPAMI 2018: p = 3)."""

    def __init__(self, p: float = 3.0):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return gem(x, self.p)


class L2N(nn.Module):
    """l2 normalisation as a layer (cirtorch's whitening applies to the normalised pooled vector)."""

    def forward(self, x: Tensor) -> Tensor:
        return l2n(x)
