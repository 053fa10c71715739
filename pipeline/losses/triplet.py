"""Batch-hard triplet loss (Hermans et al., 2017), the metric half of D3still's supervised term (D3still)."""
from __future__ import annotations

import torch
from torch import Tensor


def batch_hard_triplet(x: Tensor, labels: Tensor, margin: float = 0.3) -> Tensor:
    """mean over anchors of relu(max_p d(a, p) − min_n d(a, n) + margin), Euclidean d, hardest positive and
    negative within the batch; anchors without a positive or a negative are left out (0 when none is left)."""
    squared = (x.unsqueeze(1) - x.unsqueeze(0)).pow(2).sum(-1)
    distances = squared.clamp_min(1e-12).sqrt()  # sqrt's gradient at 0 (an item and itself) would be inf
    same = labels.unsqueeze(1) == labels.unsqueeze(0)
    positive = same & ~torch.eye(len(x), dtype=torch.bool, device=x.device)
    usable = positive.any(1) & (~same).any(1)
    if not usable.any():
        return x.sum() * 0
    hardest_positive = distances.masked_fill(~positive, float("-inf")).max(1).values
    hardest_negative = distances.masked_fill(same, float("inf")).min(1).values
    return torch.relu(hardest_positive - hardest_negative + margin)[usable].mean()
