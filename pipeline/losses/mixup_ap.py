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


def soft_ap(scores: Tensor, relevance: Tensor, n_bins: int = 25) -> Tensor:
    """Binned AP per row (METHODS §6): Σ_b Prec(b) ΔRec(b). scores, relevance: (Q, M) -> (Q,)."""
    p = soft_bins(scores, n_bins)  # (Q, M, C)
    positives_per_bin = (p * relevance.unsqueeze(-1)).sum(1)  # (Q, C)
    all_per_bin = p.sum(1)
    precision = positives_per_bin.cumsum(1) / all_per_bin.cumsum(1).clamp_min(1e-12)
    recall_step = positives_per_bin / positives_per_bin.sum(1, keepdim=True).clamp_min(1e-12)
    return (precision * recall_step).sum(1)


def ap_loss(scores: Tensor, relevance: Tensor, n_bins: int = 25) -> Tensor:
    """mean over rows with a positive of 1 − AP (rows without one are left out)."""
    has_positive = relevance.sum(1) > 0
    return (1 - soft_ap(scores[has_positive], relevance[has_positive], n_bins)).mean()


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
    not_self = ~torch.eye(2 * b, dtype=torch.bool, device=s.device)
    total = s.new_zeros(())
    for _ in range(rounds):
        lam = float(beta.sample())
        partners = torch.randint(b, (b,), device=s.device)
        f_t = torch.cat([t, mix(t, partners, lam)])
        f_s = torch.cat([s, mix(s, partners, lam).detach()])
        y = mixup_labels(f_t @ f_t.T, partners, tau)
        scores = (f_s @ f_s.T)[not_self].view(2 * b, 2 * b - 1)
        total = total + ap_loss(scores, y[not_self].view(2 * b, 2 * b - 1).to(s.dtype), n_bins)
    return total / rounds

