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
from pipeline.losses.csd import csd_kl, csd_norm
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
