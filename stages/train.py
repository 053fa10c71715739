"""Stage `train`: a student trained against cached teacher features (no teacher forward pass)."""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import torch

from pipeline import layout
from pipeline.data.cache import DecodedCache
from pipeline.data.dataset import make_loader
from pipeline.data.h5 import read_arrays
from pipeline.data.views import OneViewPerImage, PositivePairs, RandomlyErased, SeededView, ViewDataset, every_view
from pipeline.errors import RdistillError
from pipeline.distributed import Shard, init_from_env, is_main, main_first, rank_and_world
from pipeline.io import atomic_path, write_json
from pipeline.methods import METHODS
from pipeline.models.backbones import create
from pipeline.params import load_params
from pipeline.provenance import open_checked_features
from pipeline.scratch import ChunkStore
from pipeline.runtime import device, seed_everything
from pipeline.train.loop import fit
from pipeline.train.objectives import CachedTargets, build_objective
from pipeline.train.targets import open_targets, pair_partners, read_neighbours, teacher_targets, write_targets
from stages.common import class_indices, prepared_list
from stages.students import student

log = logging.getLogger(__name__)


def load_neighbours(teacher: str, list_sha: str, weights_sha: str, n_rows: int) -> np.ndarray:
    """(N, K) mined neighbour rows of a teacher, −1 for rows that were not mined."""
    return read_neighbours(layout.neighbours(teacher), n_rows, {"list_sha256": list_sha, "weights_sha256": weights_sha})


def load_targets(teachers: list[str], list_sha: str, n_rows: int, n_classes: int, path: Path) -> tuple[CachedTargets, dict]:
    """Cached whitened features of every item by each teacher, memory-mapped from one target file at `path`
    (written here from the teachers' whitened files when absent), and the first teacher's neighbours."""
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open_checked_features(layout.whitened_features(t), list_sha, t)) for t in teachers]
        attrs = files[0].attrs
        sources = teacher_targets(files, n_rows)
        main_first(lambda: None if path.is_file() else write_targets(path, sources, n_rows, files[0].n_views))
    neighbours = load_neighbours(teachers[0], list_sha, attrs["weights_sha256"], n_rows)
    stacked = torch.from_numpy(open_targets(path))
    return CachedTargets(stacked, torch.from_numpy(neighbours), n_classes, stacked.shape[-1], attrs["weights_sha256"]), attrs


def partners_of(mode: str, targets: CachedTargets, teachers: list[str], teacher_shas: list[str], list_sha: str,
                rows: np.ndarray, fusion: str, seed: int) -> np.ndarray | None:
    """For pairs from mined neighbours: each training row's partner (a position in `rows`) among every
    teacher's few nearest mined neighbours, by the teachers' similarities fused as the method fuses them
    (teacher_shas: each teacher's weights, from its whitened file); None for other pairings."""
    if mode != "neighbours":
        return None
    candidates = [targets.neighbours.numpy()]
    for t, weights_sha in zip(teachers[1:], teacher_shas[1:]):
        candidates.append(load_neighbours(t, list_sha, weights_sha, targets.n_rows))
    width = min(5, *(c.shape[1] for c in candidates))  # each teacher's few nearest
    return pair_partners(targets.teachers, rows, np.concatenate([c[rows, :width] for c in candidates], axis=1),
                         fusion, torch.Generator().manual_seed(seed))


def check_batch(name: str, method: str, batch_size: int, n_train: int, world: int, d3still_k: int) -> None:
    """Refuse a batch size that training cannot use: above the training set, not shared evenly by the
    ranks, or shorter than D3still's lists."""
    if batch_size > n_train:
        raise RdistillError(f"student {name}: recipe batch_size {batch_size} is larger than the "
                            f"{n_train} training images (every batch is full)")
    if batch_size % world:
        raise RdistillError(f"student {name}: recipe batch_size {batch_size} is not a multiple of the "
                            f"{world} ranks (WORLD_SIZE)")
    if method == "d3still" and batch_size < d3still_k:
        raise RdistillError(f"student {name}: train.d3still.k {d3still_k} is longer than the batch "
                            f"({batch_size}) its lists are drawn from")


def train(name: str, params_path: Path) -> None:
    """Write data/students/<name>.pt and metrics/train/<name>.json (loss per epoch, seconds)."""
    params = load_params(params_path)
    spec, p = student(params, name, params_path), params.train
    recipe = spec.recipe
    init_from_env()
    seed_everything(params.seed)
    image_list, list_sha = prepared_list()
    rows = image_list.train_rows()
    labelled = (image_list.labels[rows] >= 0).all()
    pairs_from = spec.settings.pairs if METHODS[spec.method].pairs else None
    if spec.method == "no_distill" or pairs_from == "labels" or (recipe.supervised_weight > 0 and labelled):
        labels, n_classes = class_indices(image_list, rows, f"student {name} ({spec.method})")
    else:
        labels, n_classes = image_list.labels, 0
    teacher_shas = [read_arrays(layout.whitened_features(t), [])[1].get("weights_sha256") for t in spec.teachers]
    store = main_first(lambda: ChunkStore(layout.scratch("train", name), {
        "params": params.model_dump(), "list_sha256": list_sha, "teacher_sha256": teacher_shas}))
    targets, attrs = load_targets(spec.teachers, list_sha, len(image_list), n_classes, store.file("targets.npy"))
    n_views = attrs.get("views", 1)
    net = create(p.student.arch, targets.dim, p.student.last_stride, p.student.pool)
    objective = build_objective(spec.method, spec.settings, targets, p.temperature,
                                recipe.supervised_weight, recipe.supervised, recipe.triplet_margin)
    key_rows, key_views = every_view(rows, n_views)
    size = p.student.image_size
    views = ViewDataset(image_list.paths, labels, key_rows, key_views, SeededView(size, attrs.get("seed", params.seed)))
    dataset = DecodedCache(views, (3, size, size), p.image_cache_mb, shared=p.workers > 0)
    if p.student.random_erasing:
        dataset = RandomlyErased(dataset, p.student.random_erasing)
    rank, world = rank_and_world()
    if pairs_from is not None:
        fusion = getattr(spec.settings, "fusion", "mean")  # contrastive fuses nothing: the mean
        partners = partners_of(pairs_from, targets, spec.teachers, teacher_shas, list_sha, rows, fusion, params.seed)
        epoch, unit = (lambda g: PositivePairs(labels[rows], n_views, pairs_from, g, partners)), 2
    else:
        epoch, unit = (lambda g: OneViewPerImage(len(rows), n_views, g)), 1
    check_batch(name, spec.method, recipe.batch_size, len(rows), world, getattr(spec.settings, "k", 2))
    # Under torchrun each rank takes its contiguous share of every global batch (batch_size is global).
    per_rank = unit * recipe.batch_size // world
    sampler = (lambda g: Shard(epoch(g), rank, world, per_rank)) if world > 1 else epoch
    # Full batches only: batch-level losses (D3still's lists, similarity matrices) need more than one image.
    loader = make_loader(dataset, per_rank, p.workers, seed=params.seed, sampler=sampler, drop_last=True)
    log.info("training student %s (%s, %s from %s, %d view(s)) on %d images", name, p.student.arch, spec.method,
             "+".join(spec.teachers), n_views, len(rows))
    history = fit(net, objective, loader, recipe, device(),
                  on_epoch=lambda r: log.info("%s epoch %d loss %.4f (%.1fs)", name, r["epoch"], r["loss"], r["seconds"]),
                  checkpoint=store.file("checkpoint.pt"))
    if not is_main():
        return
    checkpoint = {"arch": p.student.arch, "dim": targets.dim, "image_size": p.student.image_size,
                  "last_stride": p.student.last_stride, "pool": p.student.pool,
                  "method": spec.method, "teacher": spec.gallery, "teachers": spec.teachers,
                  "state_dict": net.cpu().state_dict()}
    with atomic_path(layout.student_weights(name)) as tmp:
        torch.save(checkpoint, tmp)
    write_json(layout.metrics("train", name), {
        "method": spec.method, "teachers": spec.teachers, "arch": p.student.arch, "recipe": recipe.model_dump(),
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in history])), "history": history})
    write_json(layout.plot("loss", name, ".json"), {"loss": [{"epoch": r["epoch"], "loss": r["loss"]} for r in history]})
    store.clear()
