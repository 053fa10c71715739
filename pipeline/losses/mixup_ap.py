"""Data-efficient ranking distillation: representation mixup and a listwise AP loss (mixup ranking distillation)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_bins(scores: Tensor, n_bins: int = 25) -> Tensor:
    """Triangular soft assignment of scores in [−1, 1] to C bins centred at 1, 1 − Δ, …, −1 (Δ = 2/(C − 1)).

    p(s, b) = max(0, min(1 − (c_b − s)/Δ, 1 − (s − c_b)/Δ)), the first bin 1 for s ≥ 1 and the last
    for s ≤ −1, so each score spreads a total weight of 1. Computed as the reference code does, a `min`
    of two lines clamped at 0, so that the subgradient at a centre or at ±1 is the reference's
    (torch's `min` splits a tie's gradient between the two lines). scores: (..., M) -> (..., M, C).
    """
    slope = (n_bins - 1) / 2.0
    centres = 1.0 - torch.arange(n_bins, dtype=scores.dtype, device=scores.device) / slope
    s = scores.unsqueeze(-1)
    rising, falling = 1 - slope * (centres - s), 1 - slope * (s - centres)
    ones = torch.ones_like(s)
    rising = torch.cat([rising[..., :-1], ones], -1)  # the last bin stays 1 below −1
    falling = torch.cat([ones, falling[..., 1:]], -1)  # the first bin stays 1 above 1
    return torch.min(rising, falling).clamp(min=0)


def binned_sums(scores: Tensor, weights: Tensor, n_bins: int = 25) -> Tensor:
    """Σ_m p(s_m, b) · w_m per row and bin, with p the soft_bins assignment. (Q, M) -> (Q, C).

    A score lies between two adjacent centres and gives them weights 1 − f and f (f its fractional
    position), so the sums are two scatter-adds instead of a (Q, M, C) tensor; scores beyond ±1
    saturate in the first or last bin. Scores exactly on a centre get soft_bins' subgradient
    (with_centre_subgradient).
    """
    delta = 2.0 / (n_bins - 1)
    raw_position = (1.0 - scores) / delta  # 0 at centre c_1 = 1, C − 1 at c_C = −1
    position = raw_position.clamp(0, n_bins - 1)
    lower = position.detach().floor().clamp(max=n_bins - 2).long()
    upper_share = position - lower
    sums = scores.new_zeros(scores.shape[0], n_bins)
    sums = sums.scatter_add(1, lower, (1 - upper_share) * weights)
    sums = sums.scatter_add(1, lower + 1, upper_share * weights)
    return with_centre_subgradient(sums, raw_position, weights, n_bins)


def with_centre_subgradient(sums: Tensor, raw_position: Tensor, weights: Tensor, n_bins: int) -> Tensor:
    """Add, as terms of value zero, what soft_bins' subgradient adds for scores exactly on a centre.

    On an inner centre k (position x = k) the split of binned_sums gives bins k and k + 1 the gradients
    −1 and +1 in x, soft_bins none (its bin's two lines tie, its neighbours' lines are at 0, where clamp
    passes nothing). At x = 0 (s = 1) and x = C − 1 (s = −1) the clamped position gives none, soft_bins
    −1/2 to bin 0 and +1/2 to bin C − 1 (a line ties the constant 1). The differences ride on
    raw_position − raw_position.detach(), which is 0.
    """
    k = raw_position.detach().round()
    on_centre = (raw_position.detach() == k) & (k >= 0) & (k <= n_bins - 1)
    zero = (raw_position - raw_position.detach()) * weights * on_centre
    k = k.clamp(0, n_bins - 1).long()
    inner = (k > 0) & (k < n_bins - 1)
    own_bin = torch.where(inner, 1.0, torch.where(k == 0, -0.5, 0.5)).to(zero.dtype)
    sums = sums.scatter_add(1, k, zero * own_bin)
    return sums.scatter_add(1, (k + 1).clamp(max=n_bins - 1), -zero * inner)


def soft_ap(scores: Tensor, relevance: Tensor, n_bins: int = 25, counted: Tensor | None = None) -> Tensor:
    """Binned AP per row (mixup ranking distillation): Σ_b Prec(b) ΔRec(b). scores, relevance: (Q, M) -> (Q,).

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


def mixup_partners(b: int, device=None) -> Tensor:
    """A random partner r_k ≠ k for each of b samples, uniform over the others (global generator)."""
    return (torch.arange(b, device=device) + 1 + torch.randint(b - 1, (b,), device=device)) % b


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
    """mixup ranking distillation loss, averaged over R rounds of representation mixup.

    s: student features (B, Ds); t: cached teacher features (B, Dt). Each round draws λ ~ Beta(α, α)
    and a random partner per sample, never the sample itself (torch's global generator, seeded by the training loop); mixed
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
        partners = mixup_partners(b, s.device)
        f_t = torch.cat([t, mix(t, partners, lam)])
        f_s = torch.cat([s, mix(s, partners, lam).detach()])
        y = mixup_labels(f_t @ f_t.T, partners, tau)
        total = total + ap_loss(f_s @ f_s.T, y.to(s.dtype) * counted, n_bins, counted)
    return total / rounds

