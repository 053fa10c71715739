"""Whiten-MTD: multi-teacher similarity distillation over whitened teachers (Whiten-MTD)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

FUSIONS = ("mean", "rand", "max-min", "max-mean", "max-rand")


def cross_view_similarities(x: Tensor, y: Tensor) -> Tensor:
    """S[i, j] = x_iᵀ y_j of l2-normalised rows: rows are views x, columns views y, positives on the diagonal."""
    return F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).transpose(-1, -2)


def fuse_off_diagonal(teachers: Tensor, rule: str = "max-min", generator: torch.Generator | None = None) -> Tensor:
    """The fused similarity of pairs of distinct images under `rule` (what fuse puts off the diagonal):
    mean for mean and max-mean, min for max-min, a random teacher per entry for rand and max-rand. (K, ...) -> (...)."""
    if rule not in FUSIONS:
        raise ValueError(f"unknown fusion {rule!r} (known: {', '.join(FUSIONS)})")
    if rule in ("mean", "max-mean"):
        return teachers.mean(0)
    if rule == "max-min":
        return teachers.min(0).values
    pick = torch.randint(len(teachers), (1, *teachers.shape[1:]), generator=generator, device=teachers.device)
    return teachers.gather(0, pick)[0]


def fuse(teachers: Tensor, rule: str = "max-min", generator: torch.Generator | None = None) -> Tensor:
    """Element-wise fusion F(T_1..T_K) of Whiten-MTD. teachers: (K, N, N) -> (N, N).

    mean; rand (each entry from a random teacher); max-min, max-mean, max-rand (diagonal: the
    maximum over teachers; off-diagonal: min, mean or a random teacher, as fuse_off_diagonal).
    """
    off = fuse_off_diagonal(teachers, rule, generator)
    if rule in ("mean", "rand"):  # the diagonal follows the same rule
        return off
    eye = torch.eye(teachers.shape[1], dtype=torch.bool, device=teachers.device)
    return torch.where(eye, teachers.max(0).values, off)


def row_kl(s: Tensor, t: Tensor, tau_s: float = 0.05, tau_t: float = 0.05, teacher_target: bool = True) -> Tensor:
    """L_row = (1/N) Σ_i KL(Q_i ‖ P_i), P = row-softmax(S/τ_s), Q = row-softmax(T/τ_t) (batchmean, no τ²).

    With teacher_target=False the KL is taken the other way round, KL(P_i ‖ Q_i).
    """
    log_p = F.log_softmax(s / tau_s, dim=1)
    log_q = F.log_softmax(t / tau_t, dim=1)
    if teacher_target:
        return F.kl_div(log_p, log_q, log_target=True, reduction="batchmean")
    return F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")


def whiten_mtd(s: Tensor, teachers: Tensor, rule: str = "max-min", tau_s: float = 0.05, tau_t: float = 0.05,
               both_directions: bool = True, teacher_target: bool = True,
               generator: torch.Generator | None = None) -> Tensor:
    """Whiten-MTD loss (Whiten-MTD): L_row(S, F(T_k)) + L_row(Sᵀ, F(T_kᵀ)) (the second when both_directions).

    s: student cross-view similarities (N, N); teachers: whitened teachers' ones (K, N, N).
    """
    loss = row_kl(s, fuse(teachers, rule, generator), tau_s, tau_t, teacher_target)
    if both_directions:
        loss = loss + row_kl(s.T, fuse(teachers.transpose(1, 2), rule, generator), tau_s, tau_t, teacher_target)
    return loss


def contrastive(s: Tensor, tau_s: float = 0.05, both_directions: bool = True) -> Tensor:
    """Contrastive baseline: Whiten-MTD with Q = I, i.e. cross-entropy of each row towards its diagonal."""
    target = torch.arange(len(s), device=s.device)
    loss = F.cross_entropy(s / tau_s, target)
    return loss + F.cross_entropy(s.T / tau_s, target) if both_directions else loss


def fused_nearest(anchors: Tensor, candidates: Tensor, valid: Tensor, rule: str = "mean",
                  generator: torch.Generator | None = None) -> Tensor:
    """Each anchor's positive partner: the candidate with the highest fused teacher similarity (Whiten-MTD
    choice), fused by `rule` as fuse fuses pairs of distinct images.

    anchors: (K, n, D) l2-normalised features under K teachers; candidates: (K, n, C, D) those of each
    anchor's C candidates; valid: (n, C), False for padding. Returns (n,) positions in 0..C−1.
    """
    scores = fuse_off_diagonal(torch.einsum("knd,kncd->knc", anchors, candidates), rule, generator)
    return scores.masked_fill(~valid, float("-inf")).argmax(1)
