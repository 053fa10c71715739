"""Stage `train`: a student trained against cached teacher features (no teacher forward pass)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from pipeline import layout
from pipeline.data.dataset import ImageListDataset, make_loader, train_transform
from pipeline.data.h5 import read_arrays
from pipeline.features.extract import default_device
from pipeline.io import atomic_path, write_json
from pipeline.models.registry import create
from pipeline.params import load_params
from pipeline.provenance import require_match
from pipeline.scratch import ChunkStore
from pipeline.train.loop import fit, seed_everything
from pipeline.train.objectives import Targets, build_objective
from stages.common import class_indices, declared, prepared_list, read_checked_features

log = logging.getLogger(__name__)


def load_targets(teacher: str, list_sha: str, n_rows: int, n_classes: int) -> Targets:
    """Cached whitened teacher features and mined neighbours, indexed by list row."""
    whitened = read_checked_features(layout.whitened_features(teacher), list_sha, teacher)
    nb_path = layout.neighbours(teacher)
    arrays, nb_attrs = read_arrays(nb_path, ["rows", "indices"])
    require_match(nb_path, nb_attrs, "list_sha256", list_sha)
    require_match(nb_path, nb_attrs, "weights_sha256", whitened.attrs["weights_sha256"])
    neighbours = np.full((n_rows, arrays["indices"].shape[1]), -1, dtype=np.int64)
    neighbours[arrays["rows"]] = arrays["indices"]
    return Targets(torch.from_numpy(whitened.features), torch.from_numpy(neighbours), n_classes,
                   whitened.features.shape[1], whitened.attrs["weights_sha256"])


def train(name: str, params_path: Path) -> None:
    """Write data/students/<name>.pt and metrics/train/<name>.json (loss per epoch, seconds)."""
    params = load_params(params_path)
    spec, p = declared(params.students, "students", name, params_path), params.train
    seed_everything(params.seed)
    image_list, list_sha = prepared_list()
    rows = image_list.train_rows()
    labelled = (image_list.labels[rows] >= 0).all()
    if spec.method == "no_distill" or (spec.method == "d3still" and labelled):
        labels, n_classes = class_indices(image_list, rows, f"student {name}")
    else:
        labels, n_classes = image_list.labels, 0
    targets = load_targets(spec.teacher, list_sha, len(image_list), n_classes)
    net = create(p.student.arch, targets.dim)
    objective = build_objective(spec.method, p, targets)
    dataset = ImageListDataset(image_list.paths, labels, rows, train_transform(p.student.image_size))
    loader = make_loader(dataset, p.batch_size, p.workers, shuffle=True, seed=params.seed)
    log.info("training student %s (%s, %s from %s) on %d images", name, p.student.arch, spec.method, spec.teacher, len(rows))
    store = ChunkStore(layout.scratch("train", name), {"params": params.model_dump(), "list_sha256": list_sha,
                                                        "teacher_sha256": targets.source_sha256})
    history = fit(net, objective, loader, p.epochs, p.lr, p.weight_decay, default_device(),
                  on_epoch=lambda r: log.info("%s epoch %d loss %.4f (%.1fs)", name, r["epoch"], r["loss"], r["seconds"]),
                  checkpoint=store.file("checkpoint.pt"))
    checkpoint = {"arch": p.student.arch, "dim": targets.dim, "image_size": p.student.image_size,
                  "method": spec.method, "teacher": spec.teacher, "state_dict": net.cpu().state_dict()}
    with atomic_path(layout.student_weights(name)) as tmp:
        torch.save(checkpoint, tmp)
    write_json(layout.metrics("train", name), {
        "method": spec.method, "teacher": spec.teacher, "arch": p.student.arch,
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in history])), "history": history})
    write_json(layout.plot("loss", name, ".json"), {"loss": [{"epoch": r["epoch"], "loss": r["loss"]} for r in history]})
    store.clear()
