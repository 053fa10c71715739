"""Normalised-softmax classification (cosine classifier), for teachers and the no-distill student."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def normalised_softmax(x: Tensor, proxies: Tensor, labels: Tensor, temperature: float = 0.05) -> Tensor:
    """Cross-entropy of cosine logits: CE(l2n(x) l2n(W)ᵀ / T, y). x: (B, D), proxies W: (C, D), labels: (B,)."""
    logits = F.normalize(x, dim=1) @ F.normalize(proxies, dim=1).T / temperature
    return F.cross_entropy(logits, labels)
