"""D3still: decoupled differential distillation for asymmetric retrieval (D3still).

Conventions follow the authors' code: teacher-ordered top-k lists, L_f as an l2 norm over the batch
divided by n, both orders of every pair, the constant m in the denominator, Heaviside H(0) = 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def teacher_ordered_lists(q: Tensor, g: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """C^g, C^q (n, k): rows of G^g = g gᵀ sorted descending, and G^q = q gᵀ gathered at the same indices."""
    gram_g, gram_q = g @ g.T, q @ g.T
    order = torch.sort(gram_g, dim=1, descending=True, stable=True).indices[:, :k]
    return gram_g.gather(1, order), gram_q.gather(1, order)


def pair_differences(c: Tensor) -> Tensor:
    """Δ_{i,j,l} = C_{i,l} − C_{i,j} over positions 1..k−1 (self excluded), both orders. (n, k) -> (n, k−1, k−1)."""
    rest = c[:, 1:]
    return rest.unsqueeze(1) - rest.unsqueeze(2)


def d3still_terms(q: Tensor, g: Tensor, k: int = 10, m: float = 0.1) -> tuple[Tensor, Tensor, Tensor]:
    """(L_f, L_irpd, L_crpd) of D3still (D3still Eq. 15 and the pairwise terms), computed in float64.

    q: student (query-model) features (n, D); g: teacher (gallery-model) features (n, D).
    L_f = ‖C^g_{:,0} − C^q_{:,0}‖₂ / n; R = (Δ^q − Δ^g) / (m + |Δ^g|); pairs whose Δ^q/Δ^g
    (denominator 1 where Δ^g = 0) is negative are inconsistent, positive consistent, zero neither;
    L_irpd, L_crpd = mean_i ‖mask ⊙ R_i‖_F / (k − 1).
    """
    q = F.normalize(q.double(), dim=1)
    g = F.normalize(g.double(), dim=1)
    k = min(k, len(g))
    c_g, c_q = teacher_ordered_lists(q, g, k)
    n = len(q)
    l_f = torch.linalg.vector_norm(c_g[:, 0] - c_q[:, 0]) / n
    d_q, d_g = pair_differences(c_q), pair_differences(c_g)
    r = (d_q - d_g) / (m + d_g.abs())
    with torch.no_grad():
        ratio = d_q / torch.where(d_g == 0, torch.ones_like(d_g), d_g)
        inconsistent, consistent = (ratio < 0).double(), (ratio > 0).double()
    per_sample = lambda mask: torch.linalg.matrix_norm(mask * r, ord="fro")  # noqa: E731
    l_irpd = per_sample(inconsistent).mean() / (k - 1)
    l_crpd = per_sample(consistent).mean() / (k - 1)
    return l_f, l_irpd, l_crpd


def d3still(q: Tensor, g: Tensor, k: int = 10, m: float = 0.1, alpha: float = 100.0, beta: float = 5.0,
            gamma: float = 1.0) -> Tensor:
    """D3still loss L = α L_f + β L_irpd + γ L_crpd (D3still); returned in q's dtype."""
    l_f, l_irpd, l_crpd = d3still_terms(q, g, k, m)
    return (alpha * l_f + beta * l_irpd + gamma * l_crpd).to(q.dtype)
