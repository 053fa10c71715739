"""Stages scored from cached features alone (no network, no torch import): `evaluate-teacher` (raw and
whitened) and `evaluate-em` (EM: the teachers' whitened similarities averaged at test time).

Features are read by rows: only query and gallery rows for the scores, sampled training rows for
the diagnostics; nothing M × M or Q × G is ever held.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from pipeline import layout
from pipeline.evaluate.ensemble import EnsembleRows
from pipeline.evaluate.metrics import view_mrr
from pipeline.data.h5 import write_arrays
from pipeline.evaluate.protocols import (load_ground_truth, pop_per_query, query_rows_of, recall_within, revisited_lines,
                                        score)
from pipeline.io import write_json
from pipeline.params import load_params
from pipeline.whitening.pca import angle_statistics
from pipeline.provenance import open_checked_features
from stages.common import prepared_list


def evaluate_teacher(name: str, params_path: Path) -> str:
    """Write metrics/eval_teacher/<name>.json (the teacher's raw and whitened features) and every query's AP."""
    p = load_params(params_path).evaluate
    image_list, list_sha = prepared_list()
    truth = load_ground_truth(layout.GROUND_TRUTH, image_list)
    validation = image_list.validation()  # held-out training rows, scored like test rows (class protocol)
    validation_recall = recall_within(p.recall_at, validation, "validation")
    result = {}
    for setting, source in (("raw", layout.raw_features(name)), ("whitened", layout.whitened_features(name))):
        with open_checked_features(source, list_sha, name) as features:
            result[setting] = score(image_list, features, features, truth, p.recall_at)
            result[setting]["dim"] = int(features.dim)
            if len(validation.query_rows()):
                result.setdefault("validation", {})[setting] = score(validation, features, features, None, validation_recall)
                result["validation"][setting].pop("pr_curve", None)
        result[setting].pop("pr_curve", None)
    per_query = pop_per_query(result)
    write_arrays(layout.per_query("teacher", name), {**per_query, "query_rows": query_rows_of(image_list, truth)},
                 {"list_sha256": list_sha})
    write_json(layout.metrics("eval_teacher", name), result)
    return revisited_lines(truth, result, p.recall_at)


def evaluate_ensemble(params_path: Path) -> str:
    """Write metrics/eval_ensemble/EM.json: Ensemble Mean of every declared teacher's whitened features."""
    params = load_params(params_path)
    image_list, list_sha = prepared_list()
    truth = load_ground_truth(layout.GROUND_TRUTH, image_list)
    teachers = list(params.teachers)
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open_checked_features(layout.whitened_features(t), list_sha, t)) for t in teachers]
        joint = EnsembleRows(files)
        result = score(image_list, joint, joint, truth, params.evaluate.recall_at)
        result.pop("pr_curve", None)
        train = image_list.train_rows()
        diagnostics = {t: {"angles": angle_statistics(f.with_rows(train))} for t, f in zip(teachers, files)}
        if all(f.n_views > 1 for f in files):  # Whiten-MTD's MRR: plain image vs its first view, per teacher and fused
            plains = [f.with_rows(f.view_rows()) for f in files]
            firsts = [f.views_plane(1) for f in files]
            for t, plain, first in zip(teachers, plains, firsts):
                diagnostics[t]["view_mrr"] = view_mrr(plain, first)
            diagnostics["EM"] = {"view_mrr": view_mrr(EnsembleRows(plains), EnsembleRows(firsts))}
    per_query = pop_per_query({"symmetric": result})
    write_arrays(layout.per_query("ensemble", "EM"), {**per_query, "query_rows": query_rows_of(image_list, truth)},
                 {"list_sha256": list_sha})
    write_json(layout.metrics("eval_ensemble", "EM"), {"teachers": teachers, "symmetric": result,
                                                       "diagnostics": diagnostics})
    return revisited_lines(truth, {"symmetric": result}, params.evaluate.recall_at)
