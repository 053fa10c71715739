"""Stage `evaluate`: a student's features of every query and gallery image, scored symmetric and asymmetric."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline import layout
from pipeline.data.dataset import ImageListDataset, eval_transform, make_loader
from pipeline.data.listfile import ImageList
from pipeline.evaluate.protocols import GroundTruth, load_ground_truth, revisited_lines, score, top_results
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
    curve = [{"setting": setting, "recall": r, "precision": p}
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


def evaluate(name: str, params_path: Path) -> str:
    """Write metrics/eval/<name>.json: the student symmetric, and asymmetric against its teacher."""
    params = load_params(params_path)
    p = params.evaluate
    image_list, list_sha = prepared_list()
    weights = layout.student_weights(name)
    net, checkpoint = load_student(weights)
    rows = np.union1d(image_list.query_rows(), image_list.gallery_rows())
    dataset = ImageListDataset(image_list.paths, image_list.labels, rows, eval_transform(checkpoint["image_size"]),
                               image_list.bboxes, decode_size=checkpoint["image_size"])
    loader = make_loader(dataset, p.batch_size, 0, by_shape=True)
    # The student's descriptors go to a scratch feature file and are read back block by block, like a
    # teacher's: memory stays at a block however large the gallery (1M distractors: 2 GB at 512-d).
    scratch = layout.scratch("evaluate", name)
    scratch.mkdir(parents=True, exist_ok=True)
    describe_to_file(net, loader, p.scales, image_list.ids, len(rows), device(), scratch / "student.h5",
                     desc=f"evaluate {name}")
    truth = load_ground_truth(layout.GROUND_TRUTH, image_list)
    with FeatureRows(scratch / "student.h5") as student:
        result = {"method": checkpoint["method"], "teacher": checkpoint["teacher"], "arch": checkpoint["arch"],
                  "teachers": checkpoint.get("teachers", [checkpoint["teacher"]]),
                  "symmetric": score(image_list, student, student, truth, p.recall_at)}
        if METHODS[checkpoint["method"]].teacher_space:
            with open_checked_features(layout.whitened_features(checkpoint["teacher"]), list_sha,
                                       checkpoint["teacher"]) as teacher:  # only gallery rows are read
                result["asymmetric"] = score(image_list, student, teacher, truth, p.recall_at)
        write_plots(name, image_list, student, truth, result, p.grid_queries)
    write_json(layout.metrics("eval", name), result)
    shutil.rmtree(scratch)
    return revisited_lines(truth, result, p.recall_at)
