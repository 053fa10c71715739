"""Stage `evaluate`: a student's features of every query and gallery image, scored symmetric and asymmetric."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline import layout
from pipeline.data.dataset import ImageListDataset, eval_transform, make_loader
from pipeline.data.listfile import ImageList
from pipeline.data.h5 import write_arrays
from pipeline.evaluate.protocols import (GroundTruth, average_results, load_ground_truth, pop_per_query, query_rows_of,
                                         recall_within, revisited_lines, score, top_results)
from pipeline.data.rows import FeatureRows
from pipeline.features.extract import describe_to_file
from pipeline.runtime import device
from pipeline.io import atomic_path, write_json
from pipeline.models.weights import load_student
from pipeline.methods import METHODS
from pipeline.params import load_params
from pipeline.report.grid import retrieval_grid
from pipeline.provenance import open_checked_features
from stages.common import prepared_list


def write_plots(name: str, image_list: ImageList, student, truth: GroundTruth | None, result: dict,
                n_queries: int) -> None:
    """plots/pr/<name>.json (precision–recall per setting; moved out of `result`) and plots/grid/<name>.png."""
    curve = [{"series": setting, "setting": setting, "recall": r, "precision": p}  # one line per setting
             for setting, scores in result.items() if isinstance(scores, dict) and "pr_curve" in scores
             for r, p in zip(scores["pr_curve"]["recall"], scores.pop("pr_curve")["precision"])]
    write_json(layout.plot("pr", name, ".json"), {"pr": curve})
    query_rows = truth.query_rows if truth is not None else image_list.query_rows()
    query_rows = query_rows[np.linspace(0, len(query_rows) - 1, min(n_queries, len(query_rows))).astype(int)]
    with atomic_path(layout.plot("grid", name, ".png")) as tmp:
        if len(query_rows) == 0:
            Image.new("RGB", (1, 1), (255, 255, 255)).save(tmp, format="PNG")
            return
        rows, correct = top_results(image_list, student, student, query_rows, truth)
        bboxes = image_list.bboxes or [None] * len(image_list)
        grid = retrieval_grid([(image_list.paths[r], bboxes[r]) for r in query_rows],
                              [[image_list.paths[r] for r in ranked] for ranked in rows], correct)
        grid.save(tmp, format="PNG")


def describe_student(name: str, seed: int, net, checkpoint: dict, image_list: ImageList, rows: np.ndarray, p,
                     workers: int = 0) -> Path:
    """The student's descriptors of `rows`, in a scratch feature file read back block by block like a
    teacher's: memory stays at a block however large the gallery (1M distractors: 2 GB at 512-d)."""
    dataset = ImageListDataset(image_list.paths, image_list.labels, rows, eval_transform(checkpoint["image_size"]),
                               image_list.bboxes, decode_size=checkpoint["image_size"])
    scratch = layout.scratch("evaluate", name)
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / f"student-seed-{seed}.h5"
    describe_to_file(net, make_loader(dataset, p.batch_size, workers, by_shape=True), p.scales, image_list.ids, len(rows),
                     device(), path, desc=f"evaluate {name} seed {seed}")
    return path


def evaluate(name: str, params_path: Path) -> str:
    """Write metrics/eval/<name>.json (the student symmetric, and asymmetric against its teacher: means over
    the training seeds, and each seed's) and every query's AP of every seed (data/queries/student/<name>.h5)."""
    params = load_params(params_path)
    p = params.evaluate
    image_list, list_sha = prepared_list(params)
    seeds = params.training_seeds()
    validation = image_list.validation()  # held-out training rows, scored like test rows (class protocol)
    validation_recall = recall_within(p.recall_at, validation, "validation")
    rows = np.union1d(np.union1d(image_list.query_rows(), image_list.gallery_rows()), validation.query_rows())
    truth = load_ground_truth(layout.GROUND_TRUTH, image_list)
    results = []
    for seed in seeds:
        net, checkpoint = load_student(layout.student_weights(name, seed))
        described = describe_student(name, seed, net, checkpoint, image_list, rows, p, params.runtime.workers)
        with FeatureRows(described) as student:
            result = {"method": checkpoint["method"], "teacher": checkpoint["teacher"], "arch": checkpoint["arch"],
                      "teachers": checkpoint.get("teachers", [checkpoint["teacher"]]),
                      "symmetric": score(image_list, student, student, truth, p.recall_at)}
            if len(validation.query_rows()):
                result["validation"] = {"symmetric": score(validation, student, student, None, validation_recall)}
            if METHODS[checkpoint["method"]].teacher_space:
                with open_checked_features(layout.whitened_features(checkpoint["teacher"]), list_sha,
                                           checkpoint["teacher"]) as teacher:  # only gallery rows are read
                    result["asymmetric"] = score(image_list, student, teacher, truth, p.recall_at)
                    if "validation" in result:
                        result["validation"]["asymmetric"] = score(validation, student, teacher, None, validation_recall)
            for scores in result.get("validation", {}).values():
                scores.pop("pr_curve", None)
            if seed == seeds[0]:  # curves and grids show the first seed's student, the one exported
                write_plots(name, image_list, student, truth, result, p.grid_queries)
            else:
                for scores in result.values():
                    if isinstance(scores, dict):
                        scores.pop("pr_curve", None)
        described.unlink()  # one seed's descriptors on disk at a time (2 GB a seed at 1M distractors × 512)
        results.append(result)
    per_query = [pop_per_query(r) for r in results]
    write_arrays(layout.per_query("student", name),
                 {**{k: np.stack([q[k] for q in per_query]) for k in per_query[0]},
                  "query_rows": query_rows_of(image_list, truth), "seeds": np.asarray(seeds)},
                 {"list_sha256": list_sha})
    summary = average_results(results)
    summary["seeds"] = seeds
    summary["by_seed"] = {str(seed): {k: v for k, v in r.items() if isinstance(v, dict)} for seed, r in zip(seeds, results)}
    write_json(layout.metrics("eval", name), summary)
    shutil.rmtree(layout.scratch("evaluate", name))
    return revisited_lines(truth, {k: v for k, v in summary.items() if k != "by_seed"}, p.recall_at)
