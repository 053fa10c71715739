"""The student's training batches: seeded views of the training rows, one per image or in positive pairs,
cut into full batches and shared between the DDP ranks."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from pipeline.data.cache import DecodedCache
from pipeline.data.dataset import make_loader
from pipeline.data.views import (FreshViewPerImage, FreshViews, OneViewPerImage, PositivePairs, RandomlyErased,
                                 SeededView, ViewDataset, WithDraws, every_view)
from pipeline.distributed import Shard


def training_loader(paths: Sequence[Path], labels: np.ndarray, rows: np.ndarray, n_views: int, view_seed: int,
                    image_size: int, batch_size: int, rank_world: tuple[int, int], *, pairs: str | None = None,
                    partners: np.ndarray | None = None, random_erasing: float = 0.0, cache_mb: int = 0,
                    workers: int = 0, seed: int = 0) -> DataLoader:
    """Full batches of (image, label, item) for one rank: every training row once per epoch as one of its
    n_views seeded views (view_seed: the seed the cache's views were drawn with), or, with `pairs`
    (labels | views | neighbours, partners for neighbours), as anchor–positive pairs; batch_size is global.

    Decoded images are kept in a cache of cache_mb; random erasing acts on the student's input only.
    """
    key_rows, key_views = every_view(rows, n_views)
    dataset = DecodedCache(ViewDataset(paths, labels, key_rows, key_views, SeededView(image_size, view_seed)),
                           (3, image_size, image_size), cache_mb, shared=workers > 0)
    if pairs is not None:
        epoch, unit = (lambda g: PositivePairs(labels[rows], n_views, pairs, g, partners)), 2
    else:
        epoch, unit = (lambda g: OneViewPerImage(len(rows), n_views, g)), 1
    return batches_of(dataset, epoch, unit, batch_size, rank_world, random_erasing, workers, seed)


def online_loader(paths: Sequence[Path], labels: np.ndarray, rows: np.ndarray, n_views: int, view_seed: int,
                  image_size: int, teacher_size: int, batch_size: int, rank_world: tuple[int, int], *,
                  random_erasing: float = 0.0, workers: int = 0, seed: int = 0) -> DataLoader:
    """Full batches of (image, label, item, teacher image) for one rank: every training row once per epoch, plain
    with probability 1 / n_views (as the cache of n_views views shows it) or else as a fresh seeded crop
    (pipeline.data.views.FreshViews), the same crop at the student's and the teacher's resolution; random
    erasing acts on the student's input only. Nothing is cached: every view is decoded."""
    dataset = FreshViews(paths, labels, rows, image_size, teacher_size, view_seed)
    return batches_of(dataset, lambda g: FreshViewPerImage(len(rows), n_views, g), 1, batch_size, rank_world,
                      random_erasing, workers, seed)


def batches_of(dataset, epoch, unit: int, batch_size: int, rank_world: tuple[int, int], random_erasing: float,
               workers: int, seed: int) -> DataLoader:
    """The loader of `dataset` whose every epoch is the sampler epoch(generator) yields, in full global batches
    of batch_size units (unit: indices per unit, 2 for pairs), each rank taking its contiguous share."""
    if random_erasing:
        dataset = RandomlyErased(dataset, random_erasing)
        ordered = epoch
        epoch = lambda g: WithDraws(ordered(g), g)  # noqa: E731 (drawn over the global order, before sharding)
    rank, world = rank_world
    # Under torchrun each rank takes its contiguous share of every global batch.
    per_rank = unit * batch_size // world
    sharded = (lambda g: Shard(epoch(g), rank, world, per_rank)) if world > 1 else epoch
    # Full batches only: batch-level losses (D3still's lists, similarity matrices) need more than one image.
    return make_loader(dataset, per_rank, workers, shuffle=True, seed=seed, sampler=sharded, drop_last=True)
