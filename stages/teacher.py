"""Stage `teacher`: resolve a declared teacher's weights (local file, local torch cache, or train it)."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from pipeline import layout
from pipeline.data.cache import DecodedCache
from pipeline.data.dataset import ImageListDataset, make_loader, train_transform
from pipeline.io import atomic_path, sha256_file, write_json
from pipeline.models.backbones import create
from pipeline.models.weights import initialise, names_file, network_state, pretrained_network
from pipeline.params import Recipe, load_params
from pipeline.scratch import ChunkStore
from pipeline.runtime import describe_device, device, seed_everything
from pipeline.train.live import epoch_line, epoch_logger
from pipeline.train.loop import fit
from pipeline.train.classification import ClassificationObjective
from pipeline.train.validation import validation_scorer
from pipeline.data.sizes import check_teacher_fitting
from stages.common import class_indices, declared, prepared_list

log = logging.getLogger(__name__)


def teacher(name: str, params_path: Path) -> None:
    """Write data/teachers/<name>.pt: a trained or loaded teacher network."""
    params = load_params(params_path)
    spec, p = declared(params.teachers, "teachers", name, params_path), params.teacher
    # Declared; a teacher not trained here logs no epoch, and an empty folder would not travel through git
    # (a teammate's clone would rerun this stage to make it), so it then holds an empty summary.
    untrained_log = layout.live("teacher", name) / "metrics.json"
    if spec.features:  # no network here: the marker says where the features come from (extract imports them)
        with atomic_path(layout.teacher_weights(name)) as tmp:
            torch.save({"imported_features": spec.features, "ids": spec.ids}, tmp)
        write_json(layout.metrics("teacher", name), {"arch": spec.arch, "imported_features": spec.features, "history": []})
        write_json(untrained_log, {})
        return
    seed_everything(params.teacher_seed())
    history = []
    if spec.weights == "train":
        net = create(spec.arch, spec.dim, pool=spec.pool)
        start = initialise(net, spec.init)
        image_list, list_sha = prepared_list(params)
        rows = image_list.train_rows()
        check_teacher_fitting(params, image_list.labels[rows])
        labels, n_classes = class_indices(image_list, rows, f"training teacher {name}")
        size = spec.image_size
        dataset = DecodedCache(ImageListDataset(image_list.paths, labels, rows, train_transform(size)),
                               (3, size, size), params.runtime.image_cache_mb,
                               shared=params.runtime.workers > 0)
        # BatchNorm cannot train on a last batch of one image; any other last batch is kept.
        loader = make_loader(dataset, p.batch_size, params.runtime.workers, shuffle=True, seed=params.teacher_seed(),
                             drop_last=len(rows) % p.batch_size == 1)
        objective = ClassificationObjective(n_classes, net.dim, p.temperature)
        if spec.init == "none":
            log.warning("teacher %s: weights: train fits %s from random weights on %d images, %d classes; on real "
                        "photos name pretrained weights (teachers.%s.weights) or a start (teachers.%s.init)", name,
                        spec.arch, len(rows), n_classes, name, name)
        else:
            log.info("teacher %s: fine-tuning %s on %d images, %d classes; %s", name, spec.arch, len(rows), n_classes, start)
        recipe = Recipe(lr=p.lr, weight_decay=p.weight_decay, epochs=p.epochs, batch_size=p.batch_size)
        init_sha = sha256_file(spec.init) if names_file(spec.init) else None
        store = ChunkStore(layout.scratch("teacher", name), {"spec": spec.model_dump(), "init_sha256": init_sha,
                                                              "recipe": recipe.model_dump(),
                                                              "temperature": p.temperature, "eval_every": p.eval_every,
                                                              "seed": params.teacher_seed(), "list_sha256": list_sha,
                                                              "device": describe_device(device())})
        with epoch_logger(layout.live("teacher", name)) as log_epoch:
            def on_epoch(r: dict) -> None:
                log.info("teacher %s %s", name, epoch_line(r))
                log_epoch(r)
            # one scale: extract.scales are a later stage's choice, and changing them must not retrain the teacher
            validate = validation_scorer(image_list, size, (1.0,), p.batch_size, device(), params.runtime.workers)
            history = fit(net, objective, loader, recipe, device(), on_epoch=on_epoch, checkpoint=store.file("checkpoint.pt"),
                          validate=validate, validate_every=p.eval_every)
        store.clear()
    else:
        net = pretrained_network(spec.arch, spec.dim, spec.pool, spec.weights)
        write_json(untrained_log, {})
    with atomic_path(layout.teacher_weights(name)) as tmp:
        torch.save(network_state(net.cpu()), tmp)
    write_json(layout.metrics("teacher", name), {"arch": spec.arch, "weights": spec.weights, "history": history})
