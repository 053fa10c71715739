"""Data-efficient ranking distillation: representation mixup and a listwise AP loss (METHODS §6)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_bins(scores: Tensor, n_bins: int = 25) -> Tensor:
    """Triangular soft assignment of scores in [−1, 1] to C bins centred at 1, 1 − Δ, …, −1 (Δ = 2/(C − 1)).

    p(s, b) = max(0, 1 − |s − c_b| / Δ); the first bin saturates at 1 for s ≥ 1 and the last for
    s ≤ −1, so each score spreads a total weight of 1. scores: (..., M) -> (..., M, C).
    """
    delta = 2.0 / (n_bins - 1)
    centres = 1.0 - delta * torch.arange(n_bins, dtype=scores.dtype, device=scores.device)
    p = (1 - (scores.unsqueeze(-1) - centres).abs() / delta).clamp_min(0)
    p[..., 0] = torch.where(scores >= 1, torch.ones_like(scores), p[..., 0])
    p[..., -1] = torch.where(scores <= -1, torch.ones_like(scores), p[..., -1])
    return p


def binned_sums(scores: Tensor, weights: Tensor, n_bins: int = 25) -> Tensor:
    """Σ_m p(s_m, b) · w_m per row and bin, with p the soft_bins assignment. (Q, M) -> (Q, C).

    A score lies between two adjacent centres and gives them weights 1 − f and f (f its fractional
    position), so the sums are two scatter-adds instead of a (Q, M, C) tensor; scores beyond ±1
    saturate in the first or last bin.
    """
    delta = 2.0 / (n_bins - 1)
    position = ((1.0 - scores) / delta).clamp(0, n_bins - 1)  # 0 at centre c_1 = 1, C − 1 at c_C = −1
    lower = position.detach().floor().clamp(max=n_bins - 2).long()
    upper_share = position - lower
    sums = scores.new_zeros(scores.shape[0], n_bins)
    sums = sums.scatter_add(1, lower, (1 - upper_share) * weights)
    return sums.scatter_add(1, lower + 1, upper_share * weights)


def soft_ap(scores: Tensor, relevance: Tensor, n_bins: int = 25, counted: Tensor | None = None) -> Tensor:
    """Binned AP per row (METHODS §6): Σ_b Prec(b) ΔRec(b). scores, relevance: (Q, M) -> (Q,).

    counted: (Q, M) 0/1, the entries that take part (default all; relevance must be 0 where it is 0).
    """
    positives_per_bin = binned_sums(scores, relevance, n_bins)  # (Q, C)
    all_per_bin = binned_sums(scores, torch.ones_like(scores) if counted is None else counted, n_bins)
    precision = positives_per_bin.cumsum(1) / all_per_bin.cumsum(1).clamp_min(1e-12)
    recall_step = positives_per_bin / positives_per_bin.sum(1, keepdim=True).clamp_min(1e-12)
    return (precision * recall_step).sum(1)


def ap_loss(scores: Tensor, relevance: Tensor, n_bins: int = 25, counted: Tensor | None = None) -> Tensor:
    """mean over rows with a positive of 1 − AP (rows without one are left out); `counted` as in soft_ap."""
    has_positive = (relevance.sum(1) > 0).to(scores.dtype)
    return ((1 - soft_ap(scores, relevance, n_bins, counted)) * has_positive).sum() / has_positive.sum()


def mix(features: Tensor, partners: Tensor, lam: float) -> Tensor:
    """l2n(λ f_k + (1 − λ) f_{r_k}) for every k. features: (B, D), partners: (B,) indices."""
    return F.normalize(lam * features + (1 - lam) * features[partners], dim=1)


def mixup_labels(teacher_sim: Tensor, partners: Tensor, tau: float = 0.75) -> Tensor:
    """Y (2B, 2B): similarity labelling S^T > τ, a mixed sample also taking its two sources' positives, symmetric.

    teacher_sim: S^T over [originals; mixed] (2B, 2B); partners: (B,) the second source of each mixed sample.
    """
    b = len(partners)
    y = teacher_sim > tau
    sources = torch.arange(b, device=y.device)
    y[b:] |= y[sources] | y[partners]
    y = y | y.T
    return y


def mixup_ap_loss(s: Tensor, t: Tensor, rounds: int = 10, alpha: float = 1.0, tau: float = 0.75,
                  n_bins: int = 25) -> Tensor:
    """METHODS §6 loss, averaged over R rounds of representation mixup.

    s: student features (B, Ds); t: cached teacher features (B, Dt). Each round draws λ ~ Beta(α, α)
    and a random partner per sample (torch's global generator, seeded by the training loop); mixed
    student features are detached. The AP loss ranks each
    row of S^S = F^S F^Sᵀ (self left out) against Y from the teacher's S^T.
    """
    s, t = F.normalize(s, dim=1), F.normalize(t, dim=1)
    b = len(s)
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    # Each row ranks the other 2B − 1 samples: its own entry takes no part (weight 0), no masking copies.
    counted = 1 - torch.eye(2 * b, dtype=s.dtype, device=s.device)
    total = s.new_zeros(())
    for _ in range(rounds):
        lam = float(beta.sample())
        partners = torch.randint(b, (b,), device=s.device)
        f_t = torch.cat([t, mix(t, partners, lam)])
        f_s = torch.cat([s, mix(s, partners, lam).detach()])
        y = mixup_labels(f_t @ f_t.T, partners, tau)
        total = total + ap_loss(f_s @ f_s.T, y.to(s.dtype) * counted, n_bins, counted)
    return total / rounds

