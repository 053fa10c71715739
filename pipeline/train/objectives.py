"""Training objectives: the plug-ins of the single training loop.

An objective is an nn.Module `forward(q, labels, items) -> loss` built from the cached targets; it
holds any state the method needs (cached teacher features as buffers, learned proxies) and calls
the pure loss functions in pipeline.losses. Register new methods with @register("name").

An objective whose targets are the batch's own teacher features also takes `forward(q, labels, items, live)`:
live (T, B, D) targets computed online (pipeline.train.online), used instead of the cached ones for the
batch itself; what it reads of other images (CSD's neighbours: the plain view 0) still comes from the cache.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.errors import RdistillError
from pipeline.methods import METHODS
from pipeline.train.classification import ClassificationObjective
from pipeline.losses.baselines import embedding_distillation, fitnet, pair_loss, pkt, rkd, second_order
from pipeline.losses.csd import csd_kl, csd_norm
from pipeline.losses.d3still import d3still
from pipeline.losses.mixup_ap import mixup_ap_loss
from pipeline.losses.triplet import batch_hard_triplet
from pipeline.losses.whiten_mtd import contrastive, cross_view_similarities, whiten_mtd


@dataclass
class CachedTargets:
    """What the cache offers a student, indexed by item (view · N + row, see pipeline.data.views)."""

    teachers: Tensor | None  # (T, V·N, D) whitened features of every item, per teacher (T = 1 but for ensembles)
    neighbours: Tensor | None  # (N, K) list rows mined under the first teacher; -1 for rows that were not mined
    n_classes: int  # 0 when the student trains without labels
    dim: int
    source_sha256: str = ""  # the (first) teacher's weights the cached features came from

    @property
    def teacher(self) -> Tensor:
        """The first (for single-teacher methods: the only) teacher's (V·N, D) features."""
        return self.teachers[0]

    @property
    def n_rows(self) -> int:
        """N, the number of list rows (items of view 0)."""
        return len(self.neighbours) if self.neighbours is not None else self.teachers.shape[1]


def gather_rows(table: Tensor, index: Tensor, dim: int = 0) -> Tensor:
    """table's entries along `dim` at `index` (any shape): index_select, which gathers cached rows (a
    memory-mapped target file) about twice as fast as advanced indexing on the CPU."""
    picked = torch.index_select(table, dim, index.reshape(-1).to(table.device))
    # targets kept in host memory (pipeline.train.placement): only the batch's rows travel to the step's device
    return picked.reshape(*table.shape[:dim], *index.shape, *table.shape[dim + 1:]).to(index.device, non_blocking=True)


# name -> factory(settings, targets, temperature): settings = the method's own section of params.yaml
# (any object with its attributes), temperature = the supervised terms' softmax temperature
OBJECTIVES: dict[str, Callable[[Any, CachedTargets, float], nn.Module]] = {}


def register(name: str):
    """Decorator adding an objective factory under `name`."""
    if name not in METHODS:
        raise RdistillError(f"method {name!r} has no entry in pipeline/methods.py")

    def add(factory):
        OBJECTIVES[name] = factory
        return factory
    return add


class Supervised(nn.Module):
    """objective + weight · the student's own supervised loss (the D3still code's convention)."""

    def __init__(self, objective: nn.Module, classification: nn.Module, weight: float):
        super().__init__()
        self.objective, self.classification, self.weight = objective, classification, weight

    def forward(self, q: Tensor, labels: Tensor, items: Tensor, *live: Tensor) -> Tensor:
        return self.objective(q, labels, items, *live) + self.weight * self.classification(q, labels, items)


class CrossEntropyTriplet(nn.Module):
    """Cross-entropy of a linear classifier + batch-hard triplet: the D3still code's supervised term."""

    def __init__(self, n_classes: int, dim: int, margin: float):
        super().__init__()
        self.classifier = nn.Linear(dim, n_classes)
        self.margin = margin

    def forward(self, q: Tensor, labels: Tensor, items: Tensor) -> Tensor:
        return F.cross_entropy(self.classifier(q), labels) + batch_hard_triplet(q, labels, self.margin)


def build_objective(method: str, settings, targets: CachedTargets, temperature: float = 0.05,
                    supervised_weight: float = 0.0, supervised: str = "normalised_softmax",
                    triplet_margin: float = 0.3) -> nn.Module:
    """The objective registered as `method` with its settings (e.g. k, tau_g for csd), plus a weighted
    supervised term when labels exist: `normalised_softmax` (at `temperature`) or `ce_triplet`
    (cross-entropy + batch-hard triplet with `triplet_margin`)."""
    if method not in OBJECTIVES:
        raise RdistillError(f"unknown method {method!r} (known: {', '.join(sorted(OBJECTIVES))})")
    objective = OBJECTIVES[method](settings, targets, temperature)
    if method == "no_distill" or supervised_weight == 0 or not targets.n_classes:
        return objective
    if supervised == "ce_triplet":
        term = CrossEntropyTriplet(targets.n_classes, targets.dim, triplet_margin)
    elif supervised == "normalised_softmax":
        term = ClassificationObjective(targets.n_classes, targets.dim, temperature)
    else:
        raise RdistillError(f"unknown supervised term {supervised!r} (known: normalised_softmax, ce_triplet)")
    return Supervised(objective, term, supervised_weight)


@register("csd")
class CSDObjective(nn.Module):
    """CSD against cached whitened teacher features and cached neighbours (CSD)."""

    def __init__(self, settings, targets: CachedTargets, temperature: float):
        super().__init__()
        if targets.teachers is None or targets.neighbours is None:
            raise RdistillError("method csd needs cached teacher features and mined neighbours")
        self.register_buffer("teacher", targets.teacher, persistent=False)  # cached targets: not in checkpoints
        self.register_buffer("neighbours", targets.neighbours[:, :settings.k], persistent=False)
        self.csd = settings

    def forward(self, q: Tensor, labels: Tensor, items: Tensor, live: Tensor | None = None) -> Tensor:
        # the very view the student saw; its context is the plain (view 0) gallery, cached also when training online
        g = gather_rows(self.teacher, items) if live is None else live[0]
        neighbours = gather_rows(self.teacher, gather_rows(self.neighbours, items % len(self.neighbours)))
        if self.csd.variant == "kl":
            return csd_kl(q, g, neighbours, self.csd.tau_g, self.csd.tau_q)
        return csd_norm(q, g, neighbours, alpha=1.0 if self.csd.variant == "l1" else 2.0)


@register("no_distill")
def no_distill(settings, targets: CachedTargets, temperature: float) -> nn.Module:
    """The reference student: the same network trained on labels alone."""
    return ClassificationObjective(targets.n_classes, targets.dim, temperature)


class TeacherFeatureObjective(nn.Module):
    """A loss between the batch's student features and its cached teacher features: loss(q, g) · weight."""

    def __init__(self, targets: CachedTargets, loss, weight: float = 1.0):
        super().__init__()
        if targets.teachers is None:
            raise RdistillError("this method needs cached teacher features")
        self.register_buffer("teacher", targets.teacher, persistent=False)  # cached targets: not in checkpoints
        self.loss, self.weight = loss, weight

    def forward(self, q: Tensor, labels: Tensor, items: Tensor, live: Tensor | None = None) -> Tensor:
        return self.weight * self.loss(q, gather_rows(self.teacher, items) if live is None else live[0])


@register("fitnet")
def fitnet_objective(settings, targets: CachedTargets, temperature: float) -> nn.Module:
    """FitNet / L2 regression to the whitened teacher (the D3still code's baselines)."""
    return TeacherFeatureObjective(targets, fitnet, settings.weight)


@register("pair")
def pair_objective(settings, targets: CachedTargets, temperature: float) -> nn.Module:
    """D3still's pairwise similarity baseline L_pair (the D3still code's baselines)."""
    return TeacherFeatureObjective(targets, pair_loss, settings.weight)


@register("second_order")
def second_order_objective(settings, targets: CachedTargets, temperature: float) -> nn.Module:
    """Pairwise + second-order similarity (RAML-style, the D3still code's baselines)."""
    p = settings
    return TeacherFeatureObjective(targets, lambda q, g: second_order(q, g, p.lambda_1, p.lambda_2), p.weight)


@register("rkd")
def rkd_objective(settings, targets: CachedTargets, temperature: float) -> nn.Module:
    """Relational KD, distance + angle (the D3still code's baselines)."""
    return TeacherFeatureObjective(targets, rkd, settings.weight)


@register("pkt")
def pkt_objective(settings, targets: CachedTargets, temperature: float) -> nn.Module:
    """Probabilistic knowledge transfer (the D3still code's baselines)."""
    return TeacherFeatureObjective(targets, pkt, settings.weight)


@register("mixup_ap")
def mixup_ap_objective(settings, targets: CachedTargets, temperature: float) -> nn.Module:
    """Data-efficient ranking distillation: mixup + listwise AP loss (mixup ranking distillation)."""
    p = settings
    return TeacherFeatureObjective(targets, lambda q, g: mixup_ap_loss(q, g, p.rounds, p.alpha, p.tau, p.n_bins))


@register("d3still")
def d3still_objective(settings, targets: CachedTargets, temperature: float) -> nn.Module:
    """D3still, alpha L_f + beta L_irpd + gamma L_crpd (D3still); its recipe adds the supervised term."""
    p = settings
    return TeacherFeatureObjective(targets, lambda q, g: d3still(q, g, p.k, p.m, p.alpha, p.beta, p.gamma))


@register("ed")
class EmbeddingDistillation(nn.Module):
    """Embedding Distillation over every teacher: mean_k ‖s − t_k‖² (Whiten-MTD baseline, Whiten-MTD)."""

    def __init__(self, settings, targets: CachedTargets, temperature: float):
        super().__init__()
        self.register_buffer("teachers", targets.teachers, persistent=False)
        self.weight = settings.weight

    def forward(self, q: Tensor, labels: Tensor, items: Tensor) -> Tensor:
        return self.weight * embedding_distillation(q, gather_rows(self.teachers, items, dim=1))


class PairObjective(nn.Module):
    """A loss over cross-view similarities of a batch of positive pairs (x_i, y_i), x and y alternating."""

    def __init__(self, targets: CachedTargets):
        super().__init__()
        self.register_buffer("teachers", targets.teachers, persistent=False)

    def teacher_similarities(self, items: Tensor) -> Tensor:
        """(T, B, B) per-teacher T_k[i, j] = ψ_k(x_i)ᵀ ψ_k(y_j)."""
        return cross_view_similarities(gather_rows(self.teachers, items[0::2], dim=1),
                                       gather_rows(self.teachers, items[1::2], dim=1))


@register("whiten_mtd")
class WhitenMTDObjective(PairObjective):
    """Whiten-MTD: KL between the student's and the fused teachers' cross-view similarities (Whiten-MTD)."""

    def __init__(self, settings, targets: CachedTargets, temperature: float):
        super().__init__(targets)
        self.p = settings

    def forward(self, q: Tensor, labels: Tensor, items: Tensor) -> Tensor:
        p = self.p
        return whiten_mtd(cross_view_similarities(q[0::2], q[1::2]), self.teacher_similarities(items), p.fusion,
                          p.tau_s, p.tau_t, p.both_directions, p.teacher_target)


@register("contrastive")
class ContrastiveObjective(nn.Module):
    """Contrastive baseline: Whiten-MTD with Q = I, no teacher (Whiten-MTD)."""

    def __init__(self, settings, targets: CachedTargets, temperature: float):
        super().__init__()
        self.p = settings

    def forward(self, q: Tensor, labels: Tensor, items: Tensor) -> Tensor:
        return contrastive(cross_view_similarities(q[0::2], q[1::2]), self.p.tau_s, self.p.both_directions)
