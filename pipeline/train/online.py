"""The online reference: the teacher run live on every training batch, its output whitened as the cache is.

A cached student reads its targets from the teacher's whitened features, computed once per view at
extraction; an online student gets them from this module, on the very crop it is shown (Beyer et al.,
CVPR 2022, "Knowledge distillation: A good teacher is patient and consistent"), through the same
multi-scale GeM descriptor (pipeline.features.extract) and the same learned whitening (data/whitening/T.h5).
On the cached views the two agree to float rounding (tested), so the plain image's target, the same in
every epoch, is read from the cache, and the teacher runs on the fresh crops alone: the only difference
between an online and a cached student is that its crops are new at every step, where the cache holds
extract.views − 1 of them.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.data.h5 import read_arrays
from pipeline.errors import RdistillError
from pipeline.features.extract import multiscale_descriptor
from pipeline.io import sha256_file
from pipeline.models.pooling import l2n
from pipeline.models.weights import load_network
from pipeline.train.objectives import gather_rows


class OnlineTeacher(nn.Module):
    """A frozen teacher network and its whitening: (images (B, 3, H, W), items (B,)) -> whitened targets
    (1, B, c), the layout of cached targets gathered for a batch (teachers first). Items of the plain view
    (item < N) take their row of `plain`, the cached (N, c) plain-image targets; the network runs on the rest."""

    def __init__(self, net: nn.Module, mean: np.ndarray, projection: np.ndarray, scales: Sequence[float],
                 image_size: int, plain: Tensor):
        super().__init__()
        self.image_size = image_size  # the teacher's input resolution (its views are cut at it)
        self.plain = plain  # memory-mapped with the cached targets: read a batch's rows at a time, never moved
        self.net = net.eval().requires_grad_(False)
        # float64, as the whitening stage applies it (pipeline.whitening.pca.apply_whitening)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64), persistent=False)
        self.register_buffer("projection", torch.as_tensor(projection, dtype=torch.float64), persistent=False)
        self.scales = list(scales)
        self.calls = 0  # forward passes so far (the tests count them)

    def train(self, mode: bool = True) -> OnlineTeacher:
        """Stay in eval mode: the teacher's BatchNorm statistics are frozen, whatever the student does."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor, items: Tensor) -> Tensor:
        fresh = items >= len(self.plain)
        targets = gather_rows(self.plain, torch.where(fresh, 0, items)).to(images.device)
        if fresh.any():
            targets[fresh] = self.describe(images[fresh])
        return targets.unsqueeze(0)

    @torch.no_grad()
    def describe(self, images: Tensor) -> Tensor:
        """The teacher's whitened targets (B, c) of `images`, as extraction and the whitening stage compute them."""
        self.calls += 1
        cuda = images.device.type == "cuda"
        with torch.autocast(images.device.type, enabled=cuda):  # as extraction runs it (pipeline.features.extract)
            descriptors = multiscale_descriptor(self.net, images, self.scales).float()
        with torch.autocast(images.device.type, enabled=False):
            if cuda:
                descriptors = l2n(descriptors)
            u = (descriptors.double() - self.mean) @ self.projection.T
            return l2n(u).float()


def load_online_teacher(teacher: str, spec, scales: Sequence[float], weights: Path, whitening: Path,
                        plain: Tensor) -> OnlineTeacher:
    """The online teacher of a student: the declared teacher's network (`spec`: its params.yaml entry) from
    `weights`, the whitening learned from its cached features at `whitening`, which must come from those
    weights, and its cached plain-image targets `plain` (N, c)."""
    if spec.features:
        raise RdistillError(f"teacher {teacher} imports its features (teachers.{teacher}.features): there is no "
                            "network to run online; distil it from the cache")
    arrays, attrs = read_arrays(whitening, ["mean", "projection"])
    sha = sha256_file(weights)
    if attrs.get("weights_sha256") != sha:
        raise RdistillError(f"{whitening}: learned from the features of other weights than {weights}; rerun "
                            f"`rdistill extract {teacher}` and `rdistill whiten {teacher}` (dvc repro does)")
    net = load_network(weights, spec.arch, spec.dim, spec.pool)
    return OnlineTeacher(net, arrays["mean"], arrays["projection"], scales, spec.image_size, plain)
