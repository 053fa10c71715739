"""Training objectives: the plug-ins of the single training loop.

An objective is an nn.Module `forward(q, labels, rows) -> loss` built from the cached targets; it
holds any state the method needs (cached teacher features as buffers, learned proxies) and calls
the pure loss functions in pipeline.losses. Register new methods with @register("name").
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pipeline.errors import RdistillError
from pipeline.losses.classification import normalised_softmax
from pipeline.losses.baselines import fitnet, pair_loss, pkt, rkd, second_order
from pipeline.losses.csd import csd_kl, csd_norm
from pipeline.losses.d3still import d3still
from pipeline.losses.mixup_ap import mixup_ap_loss
from pipeline.params import TrainParams


@dataclass
class Targets:
    """What the cache offers a student: whitened teacher features and mined neighbours, by list row."""

    teacher: Tensor | None  # (N, D) float32, every row of the list
    neighbours: Tensor | None  # (N, K) int64 list rows; -1 for rows that were not mined
    n_classes: int
    dim: int
    source_sha256: str = ""  # the teacher weights the cached features came from


OBJECTIVES: dict[str, Callable[[TrainParams, Targets], nn.Module]] = {}


def register(name: str):
    """Decorator adding an objective factory under `name`."""
    def add(factory):
        OBJECTIVES[name] = factory
        return factory
    return add


def build_objective(method: str, params: TrainParams, targets: Targets) -> nn.Module:
    """The objective registered as `method`."""
    if method not in OBJECTIVES:
        raise RdistillError(f"unknown method {method!r} (known: {', '.join(sorted(OBJECTIVES))})")
    return OBJECTIVES[method](params, targets)


@register("csd")
class CSDObjective(nn.Module):
    """CSD against cached whitened teacher features and cached neighbours (METHODS §4)."""

    def __init__(self, params: TrainParams, targets: Targets):
        super().__init__()
        if targets.teacher is None or targets.neighbours is None:
            raise RdistillError("method csd needs cached teacher features and mined neighbours")
        self.register_buffer("teacher", targets.teacher)
        self.register_buffer("neighbours", targets.neighbours[:, :params.csd.k])
        self.csd = params.csd

    def forward(self, q: Tensor, labels: Tensor, rows: Tensor) -> Tensor:
        g = self.teacher[rows]
        neighbours = self.teacher[self.neighbours[rows]]
        if self.csd.variant == "kl":
            return csd_kl(q, g, neighbours, self.csd.tau_g, self.csd.tau_q)
        return csd_norm(q, g, neighbours, alpha=1.0 if self.csd.variant == "l1" else 2.0)


class ClassificationObjective(nn.Module):
    """Normalised softmax over learned class proxies (labels only, no teacher)."""

    def __init__(self, n_classes: int, dim: int, temperature: float):
        super().__init__()
        self.proxies = nn.Parameter(torch.randn(n_classes, dim) / dim ** 0.5)
        self.temperature = temperature

    def forward(self, q: Tensor, labels: Tensor, rows: Tensor) -> Tensor:
        return normalised_softmax(q, self.proxies, labels, self.temperature)


@register("no_distill")
def no_distill(params: TrainParams, targets: Targets) -> nn.Module:
    """The reference student: the same network trained on labels alone."""
    return ClassificationObjective(targets.n_classes, targets.dim, params.no_distill.temperature)


class TeacherFeatureObjective(nn.Module):
    """A loss between the batch's student features and its cached teacher features: loss(q, g) · weight."""

    def __init__(self, targets: Targets, loss, weight: float = 1.0):
        super().__init__()
        if targets.teacher is None:
            raise RdistillError("this method needs cached teacher features")
        self.register_buffer("teacher", targets.teacher)
        self.loss, self.weight = loss, weight

    def forward(self, q: Tensor, labels: Tensor, rows: Tensor) -> Tensor:
        return self.weight * self.loss(q, self.teacher[rows])


@register("fitnet")
def fitnet_objective(params: TrainParams, targets: Targets) -> nn.Module:
    """FitNet / L2 regression to the whitened teacher (METHODS §5b)."""
    return TeacherFeatureObjective(targets, fitnet, params.fitnet.weight)


@register("pair")
def pair_objective(params: TrainParams, targets: Targets) -> nn.Module:
    """D3still's pairwise similarity baseline L_pair (METHODS §5b)."""
    return TeacherFeatureObjective(targets, pair_loss, params.pair.weight)


@register("second_order")
def second_order_objective(params: TrainParams, targets: Targets) -> nn.Module:
    """Pairwise + second-order similarity (RAML-style, METHODS §5b)."""
    p = params.second_order
    return TeacherFeatureObjective(targets, lambda q, g: second_order(q, g, p.lambda_1, p.lambda_2))


@register("rkd")
def rkd_objective(params: TrainParams, targets: Targets) -> nn.Module:
    """Relational KD, distance + angle (METHODS §5b)."""
    return TeacherFeatureObjective(targets, rkd, params.rkd.weight)


@register("pkt")
def pkt_objective(params: TrainParams, targets: Targets) -> nn.Module:
    """Probabilistic knowledge transfer (METHODS §5b)."""
    return TeacherFeatureObjective(targets, pkt, params.pkt.weight)


@register("mixup_ap")
def mixup_ap_objective(params: TrainParams, targets: Targets) -> nn.Module:
    """Data-efficient ranking distillation: mixup + listwise AP loss (METHODS §6)."""
    p = params.mixup_ap
    return TeacherFeatureObjective(targets, lambda q, g: mixup_ap_loss(q, g, p.rounds, p.alpha, p.tau, p.n_bins))


class D3stillObjective(TeacherFeatureObjective):
    """D3still against cached teacher features, plus the student's own supervised loss when labels exist."""

    def __init__(self, params: TrainParams, targets: Targets):
        p = params.d3still
        super().__init__(targets, lambda q, g: d3still(q, g, p.k, p.m, p.alpha, p.beta, p.gamma))
        self.supervised_weight = p.supervised_weight
        self.supervised = (ClassificationObjective(targets.n_classes, targets.dim, p.temperature)
                           if targets.n_classes and p.supervised_weight > 0 else None)

    def forward(self, q: Tensor, labels: Tensor, rows: Tensor) -> Tensor:
        loss = super().forward(q, labels, rows)
        if self.supervised is not None:
            loss = loss + self.supervised_weight * self.supervised(q, labels, rows)
        return loss


register("d3still")(D3stillObjective)
