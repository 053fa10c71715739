"""Stages scored from cached features alone (no network, no torch import): `evaluate-teacher` (raw and
whitened) and `evaluate-em` (EM: the teachers' whitened similarities averaged at test time)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import layout
from pipeline.evaluate.ensemble import ensemble_mean_features
from pipeline.evaluate.metrics import mean_reciprocal_rank
from pipeline.evaluate.protocols import load_ground_truth, score
from pipeline.io import write_json
from pipeline.params import load_params
from pipeline.whitening.pca import angle_statistics
from stages.common import prepared_list, print_revisited, read_checked_features


def evaluate_teacher(name: str, params_path: Path) -> str:
    """Write metrics/eval_teacher/<name>.json: the teacher's raw and whitened features."""
    p = load_params(params_path).evaluate
    image_list, list_sha = prepared_list()
    truth = load_ground_truth(layout.GROUND_TRUTH, image_list)
    result = {}
    for setting, source in (("raw", layout.raw_features(name)), ("whitened", layout.whitened_features(name))):
        features = read_checked_features(source, list_sha, name)
        result[setting] = score(image_list, features.features, features.features, truth, p.recall_at)
        result[setting].pop("pr_curve", None)
        result[setting]["dim"] = int(features.features.shape[1])
    write_json(layout.metrics("eval_teacher", name), result)
    return print_revisited(truth, result, p.recall_at)


def evaluate_ensemble(params_path: Path) -> str:
    """Write metrics/eval_ensemble/EM.json: Ensemble Mean of every declared teacher's whitened features."""
    params = load_params(params_path)
    image_list, list_sha = prepared_list()
    truth = load_ground_truth(layout.GROUND_TRUTH, image_list)
    teachers = list(params.teachers)
    files = [read_checked_features(layout.whitened_features(t), list_sha, t) for t in teachers]
    joint = ensemble_mean_features([f.features for f in files])
    result = score(image_list, joint, joint, truth, params.evaluate.recall_at)
    result.pop("pr_curve", None)
    diagnostics = {t: {"angles": angle_statistics(f.features[image_list.train_rows()])} for t, f in zip(teachers, files)}
    if all(f.views is not None for f in files):  # Whiten-MTD's MRR: plain image vs its first view, per teacher and fused
        per_teacher = [f.features[f.view_rows] @ f.views[0].T for f in files]
        for t, sim in zip(teachers, per_teacher):
            diagnostics[t]["view_mrr"] = mean_reciprocal_rank(sim)
        diagnostics["EM"] = {"view_mrr": mean_reciprocal_rank(np.mean(per_teacher, axis=0))}
    write_json(layout.metrics("eval_ensemble", "EM"), {"teachers": teachers, "symmetric": result,
                                                       "diagnostics": diagnostics})
    return print_revisited(truth, {"symmetric": result}, params.evaluate.recall_at)
