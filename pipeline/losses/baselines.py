"""Baseline distillation losses in the conventions of the D3still code (the D3still code's baselines) and Whiten-MTD (§3)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def fitnet(s: Tensor, t: Tensor) -> Tensor:
    """FitNet / L2 regression: mean squared error between student and teacher features (same dimension)."""
    return F.mse_loss(s, t)


def embedding_distillation(s: Tensor, teachers: Tensor) -> Tensor:
    """ED (Whiten-MTD §3 baseline): mean over teachers and samples of ‖s_i − t_k,i‖². teachers: (K, n, D)."""
    return (s.unsqueeze(0) - teachers).pow(2).sum(-1).mean()


def _off_diagonal_mse(a: Tensor, b: Tensor) -> Tensor:
    off = ~torch.eye(len(a), dtype=torch.bool, device=a.device)
    return F.mse_loss(a[off], b[off])


def second_order(s: Tensor, t: Tensor, lambda_1: float = 1.0, lambda_2: float = 1.0) -> Tensor:
    """Pairwise similarity / second-order (RAML-style): mean_i (1 − s_iᵀt_i)² + λ₁ MSE_off(S Tᵀ, T Tᵀ) + λ₂ MSE_off(S Sᵀ, T Tᵀ)."""
    s, t = F.normalize(s, dim=1), F.normalize(t, dim=1)
    tt = t @ t.T
    first = (1 - (s * t).sum(1)).pow(2).mean()
    return first + lambda_1 * _off_diagonal_mse(s @ t.T, tt) + lambda_2 * _off_diagonal_mse(s @ s.T, tt)


def pair_loss(q: Tensor, g: Tensor) -> Tensor:
    """D3still's L_pair = (1/n) Σ_i (Σ_j (S^q_ij − S^g_ij)²)^(1/2), S^q = q gᵀ, S^g = g gᵀ (normalised)."""
    q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)
    return torch.linalg.vector_norm(q @ g.T - g @ g.T, dim=1).mean()


def _distances(x: Tensor) -> Tensor:
    squared = (x.unsqueeze(0) - x.unsqueeze(1)).pow(2).sum(-1)
    d = squared.clamp_min(1e-12).sqrt()
    return d * (1 - torch.eye(len(x), dtype=x.dtype, device=x.device))


def rkd(s: Tensor, t: Tensor, distance_weight: float = 25.0, angle_weight: float = 50.0) -> Tensor:
    """RKD (Park et al. 2019) as in the D3still code's baselines: distance term on mean-normalised pairwise distances
    (smooth-L1 over all n² entries) + angle term (smooth-L1 over all n³ triplets); features not normalised."""
    d_s, d_t = _distances(s), _distances(t)
    d_s = d_s / d_s[d_s > 0].mean()
    d_t = d_t / d_t[d_t > 0].mean()
    distance = F.smooth_l1_loss(d_s, d_t)

    def angles(x: Tensor) -> Tensor:
        e = F.normalize(x.unsqueeze(0) - x.unsqueeze(1), dim=2)  # e[i, j] = l2n(x_j − x_i)
        return torch.bmm(e, e.transpose(1, 2))  # [i, j, k] = cos of angle at i between j and k

    angle = F.smooth_l1_loss(angles(s), angles(t))
    return distance_weight * distance + angle_weight * angle


def pkt(s: Tensor, t: Tensor, eps: float = 1e-7) -> Tensor:
    """PKT (the D3still code's baselines): cosine similarities mapped to [0, 1], rows normalised to sum 1 (self included);
    mean over all n² entries of P_t log((P_t + eps) / (P_s + eps))."""
    def probabilities(x: Tensor) -> Tensor:
        c = (F.normalize(x, dim=1) @ F.normalize(x, dim=1).T + 1) / 2
        return c / c.sum(dim=1, keepdim=True)

    p_s, p_t = probabilities(s), probabilities(t)
    return (p_t * torch.log((p_t + eps) / (p_s + eps))).mean()
