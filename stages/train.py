"""Stage `train`: a student trained against cached teacher features (no teacher forward pass)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pipeline import layout
from pipeline.data.h5 import read_arrays
from pipeline.distributed import init_from_env, is_main, main_first, rank_and_world
from pipeline.io import write_json
from pipeline.methods import METHODS
from pipeline.models.backbones import create
from pipeline.models.weights import save_student
from pipeline.params import load_params
from pipeline.runtime import device, seed_everything
from pipeline.scratch import ChunkStore
from pipeline.train.batches import check_batch, training_loader
from pipeline.train.loop import fit
from pipeline.train.objectives import build_objective
from pipeline.train.targets import load_targets, partners_of
from stages.common import class_indices, prepared_list
from stages.students import student

log = logging.getLogger(__name__)


def train(name: str, params_path: Path) -> None:
    """Write data/students/<name>.pt and metrics/train/<name>.json (loss per epoch, seconds)."""
    params = load_params(params_path)
    spec, p = student(params, name, params_path), params.train
    recipe, settings = spec.recipe, spec.settings
    init_from_env()
    seed_everything(params.seed)
    image_list, list_sha = prepared_list()
    rows = image_list.train_rows()
    pairs = settings.pairs if METHODS[spec.method].pairs else None
    if spec.method == "no_distill" or pairs == "labels" or (
            recipe.supervised_weight > 0 and (image_list.labels[rows] >= 0).all()):
        labels, n_classes = class_indices(image_list, rows, f"student {name} ({spec.method})")
    else:
        labels, n_classes = image_list.labels, 0
    teacher_shas = [read_arrays(layout.whitened_features(t), [])[1].get("weights_sha256") for t in spec.teachers]
    store = main_first(lambda: ChunkStore(layout.scratch("train", name), {
        "params": params.model_dump(), "list_sha256": list_sha, "teacher_sha256": teacher_shas}))
    targets, attrs = load_targets(spec.teachers, list_sha, len(image_list), n_classes, store.file("targets.npy"))
    n_views, rank_world = attrs.get("views", 1), rank_and_world()
    net = create(p.student.arch, targets.dim, p.student.last_stride, p.student.pool)
    objective = build_objective(spec.method, settings, targets, p.temperature,
                                recipe.supervised_weight, recipe.supervised, recipe.triplet_margin)
    partners = partners_of(pairs, targets, spec.teachers, teacher_shas, list_sha, rows,
                           getattr(settings, "fusion", "mean"), params.seed)  # contrastive fuses nothing: the mean
    check_batch(name, spec.method, recipe.batch_size, len(rows), rank_world[1], getattr(settings, "k", 2))
    loader = training_loader(image_list.paths, labels, rows, n_views, attrs.get("seed", params.seed),
                             p.student.image_size, recipe.batch_size, rank_world, pairs=pairs, partners=partners,
                             random_erasing=p.student.random_erasing, cache_mb=p.image_cache_mb, workers=p.workers,
                             seed=params.seed)
    log.info("training student %s (%s, %s from %s, %d view(s)) on %d images", name, p.student.arch, spec.method,
             "+".join(spec.teachers), n_views, len(rows))
    history = fit(net, objective, loader, recipe, device(),
                  on_epoch=lambda r: log.info("%s epoch %d loss %.4f (%.1fs)", name, r["epoch"], r["loss"], r["seconds"]),
                  checkpoint=store.file("checkpoint.pt"))
    if not is_main():
        return
    save_student(layout.student_weights(name), net, {
        "arch": p.student.arch, "dim": targets.dim, "image_size": p.student.image_size,
        "last_stride": p.student.last_stride, "pool": p.student.pool,
        "method": spec.method, "teacher": spec.gallery, "teachers": spec.teachers})
    write_json(layout.metrics("train", name), {
        "method": spec.method, "teachers": spec.teachers, "arch": p.student.arch, "recipe": recipe.model_dump(),
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in history])), "history": history})
    write_json(layout.plot("loss", name, ".json"), {"loss": [{"epoch": r["epoch"], "loss": r["loss"]} for r in history]})
    store.clear()
