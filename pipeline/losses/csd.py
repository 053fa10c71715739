"""Contextual Similarity Distillation (CSD): Eq. 3–5 of the CSD paper."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def contextual_similarities(x: Tensor, g: Tensor, neighbours: Tensor) -> Tensor:
    """C = xᵀF_K with F_K = [g, f_r1..f_rK]. x, g: (B, D); neighbours: (B, K, D) -> (B, K+1)."""
    context = torch.cat([g.unsqueeze(1), neighbours], dim=1)
    return torch.einsum("bd,bkd->bk", x, context)


def csd_kl(q: Tensor, g: Tensor, neighbours: Tensor, tau_g: float = 0.01, tau_q: float = 1.0) -> Tensor:
    """CSD KL loss (CSD, default): mean_b KL(softmax(C_g/τ_g) ‖ softmax(C_q/τ_q)).

    q: student features (B, D); g: teacher features (B, D); neighbours: teacher features of the
    K mined neighbours (B, K, D). Returns a scalar.
    """
    log_p_g = F.log_softmax(contextual_similarities(g, g, neighbours) / tau_g, dim=1)
    log_p_q = F.log_softmax(contextual_similarities(q, g, neighbours) / tau_q, dim=1)
    return F.kl_div(log_p_q, log_p_g, log_target=True, reduction="batchmean")


def csd_norm(q: Tensor, g: Tensor, neighbours: Tensor, alpha: float) -> Tensor:
    """CSD L1/L2 loss (CSD, Eq. 5): mean_b (Σ_j |C_q − C_g|^α)^(1/α), α ∈ {1, 2}."""
    diff = contextual_similarities(q, g, neighbours) - contextual_similarities(g, g, neighbours)
    return torch.linalg.vector_norm(diff, ord=alpha, dim=1).mean()
