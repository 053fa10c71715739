"""Stages `evaluate` (a student, symmetric and asymmetric) and `evaluate-teacher` (raw and whitened)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import layout
from pipeline.data.dataset import ImageListDataset, eval_transform, make_loader
from pipeline.data.listfile import ImageList
from pipeline.errors import RdistillError
from pipeline.evaluate.metrics import class_protocol
from pipeline.features.extract import default_device, describe_all
from pipeline.io import write_json
from pipeline.models.registry import create
from pipeline.models.weights import load_state_dict, load_strict
from pipeline.params import EvaluateParams, load_params
from stages.common import prepared_list, read_checked_features


def score(image_list: ImageList, q: np.ndarray, db: np.ndarray, p: EvaluateParams) -> dict:
    """Class-protocol metrics of query features `q` against gallery features `db` (both indexed by list row)."""
    q_rows, db_rows = image_list.query_rows(), image_list.gallery_rows()
    if not len(q_rows) or not len(db_rows):
        raise RdistillError(f"{image_list.source}: evaluation needs query and gallery rows (splits query/gallery/test)")
    return class_protocol(q[q_rows], image_list.labels[q_rows], q_rows, db[db_rows], image_list.labels[db_rows],
                          db_rows, p.recall_at)


def evaluate(name: str, params_path: Path) -> None:
    """Write metrics/eval/<name>.json: the student symmetric, and asymmetric against its teacher."""
    params = load_params(params_path)
    p = params.evaluate
    image_list, list_sha = prepared_list()
    weights = layout.student_weights(name)
    checkpoint = load_state_dict(weights)
    net = create(checkpoint["arch"], checkpoint["dim"])
    load_strict(net, checkpoint["state_dict"], str(weights))
    rows = np.union1d(image_list.query_rows(), image_list.gallery_rows())
    dataset = ImageListDataset(image_list.paths, image_list.labels, rows, eval_transform(checkpoint["image_size"]),
                               image_list.bboxes)
    loader = make_loader(dataset, p.batch_size, 0, by_shape=True)
    student = describe_all(net, loader, p.scales, len(image_list), len(rows), default_device(), desc=f"evaluate {name}")
    result = {"method": checkpoint["method"], "teacher": checkpoint["teacher"], "arch": checkpoint["arch"],
              "symmetric": score(image_list, student, student, p)}
    if checkpoint["method"] != "no_distill":
        teacher = read_checked_features(layout.whitened_features(checkpoint["teacher"]), list_sha, checkpoint["teacher"])
        result["asymmetric"] = score(image_list, student, teacher.features, p)
    write_json(layout.metrics("eval", name), result)


def evaluate_teacher(name: str, params_path: Path) -> None:
    """Write metrics/eval_teacher/<name>.json: the teacher's raw and whitened features."""
    p = load_params(params_path).evaluate
    image_list, list_sha = prepared_list()
    result = {}
    for setting, source in (("raw", layout.raw_features(name)), ("whitened", layout.whitened_features(name))):
        features = read_checked_features(source, list_sha, name)
        result[setting] = score(image_list, features.features, features.features, p)
        result[setting]["dim"] = int(features.features.shape[1])
    write_json(layout.metrics("eval_teacher", name), result)
