"""Stage `train`: a student trained against cached teacher features (no teacher forward pass), once per
training seed (`train.seeds`); or, for a student declared `online: true`, against its teacher run on every
batch (the reference that measures what the cache costs, pipeline.train.online)."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from pipeline import layout
from pipeline.data.h5 import read_arrays
from pipeline.distributed import finish, init_from_env, is_main, main_first, rank_and_world
from pipeline.io import atomic_path, sha256_file, write_json
from pipeline.methods import METHODS
from pipeline.errors import RdistillError
from pipeline.models.backbones import create
from pipeline.models.state import load_state_dict
from pipeline.models.weights import initialise, names_file, paper_init, save_student
from pipeline.params import load_params
from pipeline.provenance import library_versions, source_sha256
from pipeline.runtime import describe_device, device, seed_everything
from pipeline.scratch import ChunkStore
from pipeline.data.sizes import check_student
from pipeline.train.batches import online_loader, training_loader
from pipeline.train.live import epoch_line, epoch_logger
from pipeline.train.loop import fit
from pipeline.train.objectives import build_objective
from pipeline.train.targets import load_targets, partners_of
from pipeline.train.validation import validation_scorer
from stages.common import class_indices, prepared_list
from stages.students import online_teacher, student, target_settings

log = logging.getLogger(__name__)


def reusable(path: Path, key: str) -> dict | None:
    """The record of a student trained earlier with the same training key, or None."""
    if not path.is_file():
        return None
    try:
        record = load_state_dict(path)
    except RdistillError:  # a file cut short by a crash: train again
        return None
    return record if record.get("training_key") == key else None


def train(name: str, params_path: Path) -> None:
    """Write data/students/<name>/seed-<s>.pt for every training seed, and metrics/train/<name>.json."""
    try:
        train_every_seed(name, params_path)
    finally:
        finish()  # under torchrun: leave the process group, also after an error


def train_every_seed(name: str, params_path: Path) -> None:
    """train(), inside the process group."""
    params = load_params(params_path)
    spec, p = student(params, name, params_path), params.train
    recipe, settings = spec.recipe, spec.settings
    init_from_env(params.runtime.timeout_minutes)
    image_list, list_sha = prepared_list(params)
    rows = image_list.train_rows()
    check_student(params, spec.kind, name, spec.method, spec.own, image_list.labels[rows], rank_and_world()[1])
    pairs = settings.pairs if METHODS[spec.method].pairs else None
    if spec.method == "no_distill" or pairs == "labels" or (
            recipe.supervised_weight > 0 and (image_list.labels[rows] >= 0).all()):
        labels, n_classes = class_indices(image_list, rows, f"student {name} ({spec.method})")
    else:
        labels, n_classes = image_list.labels, 0
    init = paper_init(p.student.arch) if p.preset == "paper" and p.student.init == "none" else p.student.init
    init_sha = sha256_file(init) if names_file(init) else None  # a replaced file retrains the students it starts
    teacher_shas = [read_arrays(layout.whitened_features(t), [])[1].get("weights_sha256") for t in spec.teachers]
    # Everything a trained network depends on but its seed (the code and libraries included): a student
    # trained earlier is reused only while it holds.
    inputs = {"method": spec.method, "teachers": spec.teachers, "recipe": recipe.model_dump(),
              "settings": settings.model_dump(), "student": p.student.model_dump(), "temperature": p.temperature,
              "sync_bn": p.sync_bn, "seed": params.seed, "eval_every": p.eval_every,
              "validation": [params.evaluate.scales, params.evaluate.batch_size], "list_sha256": list_sha, "teacher_sha256": teacher_shas,
              "source_sha256": source_sha256(), "versions": library_versions(), "device": describe_device(device()),
              "init": [init, init_sha], "online": spec.online, "targets": target_settings(params, spec)}
    store = main_first(lambda: ChunkStore(layout.scratch("train", name), {  # checkpoints of another device are not resumed
        "params": params.model_dump(exclude={"train": {"seeds"}, "runtime": True}),
        "list_sha256": list_sha,
        "teacher_sha256": teacher_shas, "device": inputs["device"], "init_sha256": init_sha}))
    targets, attrs = load_targets(spec.teachers, list_sha, len(image_list), n_classes, store.file("targets.npy"))
    n_views, rank_world = attrs.get("views", 1), rank_and_world()
    if init != "none":  # refused here, in one line, before any seed trains (a name missing from the local caches)
        initialise(create(p.student.arch, targets.dim, p.student.last_stride, p.student.pool), init)
    partners = partners_of(pairs, targets, spec.teachers, teacher_shas, list_sha, rows,
                           getattr(settings, "fusion", "mean"), params.seed)  # contrastive fuses nothing: the mean
    checkpoint_record = {"arch": p.student.arch, "dim": targets.dim, "image_size": p.student.image_size, "init": init,
              "last_stride": p.student.last_stride, "pool": p.student.pool,
              "method": spec.method, "teacher": spec.gallery, "teachers": spec.teachers,
              **({"online": True} if spec.online else {})}  # a cached student's file as before online training existed
    teacher = online_teacher(params, spec, targets.teacher[:len(image_list)])
    if teacher is not None and n_views == 1:
        log.warning("student %s: online with extract.views 1 shows only plain images, whose targets the cache "
                    "holds: the teacher never runs and the student is its cached twin", name)
    validate = validation_scorer(image_list, p.student.image_size, params.evaluate.scales,
                                 params.evaluate.batch_size, device(),
                                 params.runtime.workers)
    histories = {}
    for seed in params.training_seeds():
        key = hashlib.sha256(json.dumps({**inputs, "training_seed": seed}, sort_keys=True, default=str).encode()).hexdigest()
        kept = layout.trained_seeds(name) / f"seed-{seed}.pt"
        earlier = reusable(kept, key)
        if earlier is not None:
            log.info("student %s seed %d: trained earlier with the same inputs, reused", name, seed)
            histories[seed] = earlier["history"]
            with epoch_logger(layout.live("train", name, seed)) as log_epoch:  # its epochs, as they were
                for epoch in earlier["history"]:
                    log_epoch(epoch)
            continue
        seed_everything(seed)
        net = create(p.student.arch, targets.dim, p.student.last_stride, p.student.pool)
        log.info("student %s seed %d starts from %s", name, seed, initialise(net, init))
        objective = build_objective(spec.method, settings, targets, p.temperature,
                                    recipe.supervised_weight, recipe.supervised, recipe.triplet_margin)
        if teacher is None:
            loader = training_loader(image_list.paths, labels, rows, n_views, attrs.get("seed", params.seed),
                                     p.student.image_size, recipe.batch_size, rank_world, pairs=pairs,
                                     partners=partners, random_erasing=p.student.random_erasing,
                                     cache_mb=params.runtime.image_cache_mb, workers=params.runtime.workers, seed=seed)
        else:
            loader = online_loader(image_list.paths, labels, rows, n_views, attrs.get("seed", params.seed),
                                   p.student.image_size, teacher.image_size,
                                   recipe.batch_size, rank_world, random_erasing=p.student.random_erasing,
                                   workers=params.runtime.workers, seed=seed)
        log.info("training student %s seed %d (%s, %s from %s, %s) on %d images", name, seed, p.student.arch,
                 spec.method, "+".join(spec.teachers),
                 f"online: the teacher on a fresh crop where the cache has {n_views - 1}" if teacher else
                 f"{n_views} cached view(s)", len(rows))
        with epoch_logger(layout.live("train", name, seed)) as log_epoch:  # a no-op but on rank 0
            def on_epoch(r: dict) -> None:
                log.info("%s %s", name, epoch_line(r))
                log_epoch(r)
            history = fit(net, objective, loader, recipe, device(), on_epoch=on_epoch,
                          checkpoint=store.file(f"checkpoint-seed-{seed}.pt"), sync_batchnorm=p.sync_bn,
                          validate=validate, validate_every=p.eval_every, teacher=teacher)
        histories[seed] = history
        if is_main():
            save_student(kept, net, {**checkpoint_record, "seed": seed, "training_key": key, "history": history})
    if not is_main():
        return
    out = layout.students(name)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for seed in histories:  # the outputs leave the log (timings) and the key (code hash) behind: the same bytes every run
        trained = torch.load(layout.trained_seeds(name) / f"seed-{seed}.pt", map_location="cpu", weights_only=True)
        trained.pop("history"), trained.pop("training_key")
        with atomic_path(layout.student_weights(name, seed)) as tmp:
            torch.save(trained, tmp)
    first = params.training_seeds()[0]
    write_json(layout.metrics("train", name), {
        "method": spec.method, "teachers": spec.teachers, "arch": p.student.arch, "init": init,
        "online": spec.online, "recipe": recipe.model_dump(),
        "seeds": list(histories), "seconds_per_epoch": float(np.mean([r["seconds"] for h in histories.values() for r in h])),
        "history": histories[first], "history_by_seed": {str(s): h for s, h in histories.items()}})
    write_json(layout.plot("loss", name, ".json"), {"loss": [{"epoch": r["epoch"], "loss": r["loss"]} for r in histories[first]]})
    store.clear()
