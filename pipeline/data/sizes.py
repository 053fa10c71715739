"""What a dataset's size allows: every parameter that could leave a stage nothing, or too little, to work on,
checked against the prepared rows.

`prepare` runs every check as soon as it has split the rows, so that a small dataset stops there with one
line naming the key and both numbers, not with a traceback stages later; each later stage repeats its own
(a changed parameter reruns that stage, not prepare).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from pipeline.errors import RdistillError
from pipeline.methods import METHODS
from pipeline.params import Params, RecipeOverride, Section, TrainParams, method_settings, recipe_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryCounts:
    """Queries of an evaluation split, those with at least one positive in its gallery, and the gallery's size."""

    queries: int
    with_positive: int
    gallery: int


def counts_of(table: tuple[np.ndarray, np.ndarray], values: np.ndarray) -> np.ndarray:
    """How often each of `values` occurs, from np.unique's (sorted values, counts); 0 for values not there."""
    found, counts = table
    if not len(found):
        return np.zeros(len(values), dtype=np.int64)
    position = np.searchsorted(found, values).clip(max=len(found) - 1)
    return np.where(found[position] == values, counts[position], 0)


def class_query_counts(labels: np.ndarray, query_rows: np.ndarray, gallery_rows: np.ndarray,
                       cameras: np.ndarray | None = None) -> QueryCounts:
    """Class protocol: a positive is another gallery row of the query's label (with cameras: from another
    camera). Counted from per-label (and per label and camera) gallery counts: no loop over queries."""
    labels, query_rows, gallery_rows = np.asarray(labels), np.asarray(query_rows), np.asarray(gallery_rows)
    queries = query_rows[labels[query_rows] >= 0]
    same_label = counts_of(np.unique(labels[gallery_rows], return_counts=True), labels[queries])
    if cameras is None:  # every gallery row of its label but itself
        in_gallery = np.zeros(len(labels), dtype=bool)
        in_gallery[gallery_rows] = True
        others = same_label - in_gallery[queries]
    else:  # every gallery row of its label but those of its camera (itself among them)
        cameras = np.asarray(cameras)
        keys = labels.astype(np.int64) * (int(cameras.max()) + 1) + cameras
        others = same_label - counts_of(np.unique(keys[gallery_rows], return_counts=True), keys[queries])
    return QueryCounts(len(query_rows), int((others > 0).sum()), len(gallery_rows))


def check_validation(requested: float, n_train: int, train_labels_left: np.ndarray, held_out_labels: np.ndarray,
                     stratified: bool) -> None:
    """Refuse a validation split that leaves nothing to train on, or (held out by class share) no image of a class."""
    left = len(train_labels_left)
    advice = "set a share (e.g. 0.2) or a smaller count"
    if n_train and left == 0:
        raise RdistillError(f"prepare.validation: {requested:g} of {n_train} training images leaves none to train "
                            f"on; {advice}")
    if stratified:
        gone = np.setdiff1d(np.unique(held_out_labels), np.unique(train_labels_left))
        if len(gone):
            count = int((held_out_labels == gone[0]).sum())
            raise RdistillError(f"prepare.validation: {requested:g} of {n_train} training images holds out every "
                                f"image of class {gone[0]} ({count}); {advice}")


def recipe_key(train: TrainParams, method: str, student: str, own: Section, field: str, kind: str = "students") -> str:
    """The params.yaml key that sets a student's recipe field: its own recipe, train.override, the method's
    recipe, or train.recipe (the method's paper recipe when none of them does)."""
    if getattr(own, field) is not None:
        return f"{kind}.{student}.recipe.{field}"
    if getattr(train.override, field) is not None and train.preset != "paper":
        return f"train.override.{field}"
    section = getattr(train, method)
    paper = type(section).model_fields["recipe"].default
    if train.preset != "paper" and getattr(section.recipe, field) not in (None, getattr(paper, field)):
        return f"train.{method}.recipe.{field}"
    if getattr(paper, field, None) is not None:
        return f"train.{method}.recipe.{field} (the paper's)"
    return f"train.recipe.{field}"


def students_of(params: Params):
    """(kind, name, spec) of every student, single-teacher and ensemble."""
    yield from (("students", name, spec) for name, spec in params.students.items())
    yield from (("ensembles", name, spec) for name, spec in params.ensembles.items())


def check_student(params: Params, kind: str, name: str, method: str, own: RecipeOverride, train_labels: np.ndarray,
                  world: int = 1, held_out: int = 0) -> None:
    """Refuse a student the training rows cannot feed: a batch larger than them (every batch is full), one the
    ranks cannot share, D3still lists longer than a batch, or positive pairs the labels cannot give."""
    n_train = len(train_labels)
    recipe = recipe_of(params.train, method, own)
    settings = method_settings(params.train, method)
    key = recipe_key(params.train, method, name, own, "batch_size", kind)
    if recipe.batch_size > n_train:
        raise RdistillError(f"{key}: a batch of {recipe.batch_size} for {kind}.{name}, but {n_train} training images "
                            f"(every batch is full{f'; prepare.validation holds out {held_out} more' if held_out else ''}); "
                            f"set a batch size of at most {n_train}")
    if recipe.batch_size % world:
        raise RdistillError(f"{key}: a batch of {recipe.batch_size} for {kind}.{name} is not a multiple of the "
                            f"{world} ranks (WORLD_SIZE)")
    if method == "d3still" and recipe.batch_size < settings.k:
        raise RdistillError(f"train.d3still.k: lists of {settings.k} for {kind}.{name}, longer than its batch of "
                            f"{recipe.batch_size} ({key}) they are drawn from")
    classes = len(np.unique(train_labels[train_labels >= 0]))
    if method == "no_distill" and classes < 2:
        raise RdistillError(f"{kind}.{name}: no_distill learns from the training labels alone, which hold {classes} "
                            "class; leave it out (it is the reference for other methods)")
    pairs = getattr(settings, "pairs", None) if METHODS[method].pairs else None
    if pairs == "labels":
        values, counts = np.unique(train_labels, return_counts=True)
        if (values < 0).any():
            raise RdistillError(f"train.{method}.pairs: labels, but training images without a label; "
                                "set pairs: views or neighbours")
        if (counts < 2).any():
            raise RdistillError(f"train.{method}.pairs: labels, but class {values[counts < 2][0]} has one "
                                f"training image ({int((counts < 2).sum())} of {len(values)} classes); "
                                "set pairs: views or neighbours")
    if pairs == "views" and params.extract.views < 2:
        raise RdistillError(f"train.{method}.pairs: views needs extract.views ≥ 2 (it is {params.extract.views})")


def check_teacher_fitting(params: Params, train_labels: np.ndarray) -> None:
    """Refuse fitting a teacher (`weights: train`) on fewer than two training images or classes."""
    fitted = [name for name, spec in params.teachers.items() if spec.weights == "train" and not spec.features]
    classes = len(np.unique(train_labels[train_labels >= 0]))
    if fitted and (len(train_labels) < 2 or classes < 2):
        raise RdistillError(f"teachers.{fitted[0]}.weights: train fits it on the training labels, which hold "
                            f"{len(train_labels)} images in {classes} classes (at least 2 of each are needed); "
                            "name a pretrained teacher instead")


def check_mine_k(k: int, n_train: int) -> None:
    """Refuse asking for as many neighbours as there are training images (itself excluded)."""
    if n_train < 2:
        raise RdistillError(f"the training split holds {n_train} image(s): mining neighbours needs at least 2")
    if k >= n_train:
        raise RdistillError(f"mine.k: {k} neighbours of each of {n_train} training images (at most {n_train - 1}); "
                            f"set mine.k ≤ {n_train - 1}")


def check_components(n_components: int, n_train: int, dim: int | None = None) -> None:
    """Refuse more whitened dimensions than the training features can span (N − 1 directions about their
    mean) or than they have."""
    if dim is not None and n_components > dim:
        raise RdistillError(f"whiten.n_components: {n_components} exceeds the feature dimension {dim}")
    if n_train - 1 < n_components:
        raise RdistillError(f"whiten.n_components: {n_components}, but {n_train} training images span at most "
                            f"{max(n_train - 1, 0)} directions; set whiten.n_components ≤ {max(n_train - 1, 1)}")


def index_minimum(factory: str) -> tuple[int, str]:
    """The fewest training rows a FAISS factory string can be trained on, and what sets it (0, '' for none):
    IVF's k-means needs a row per list, a product quantiser 2^nbits rows per sub-quantiser."""
    needs = [(0, "")]
    ivf = re.search(r"IVF(\d+)", factory)
    if ivf:
        needs.append((int(ivf.group(1)), f"IVF{ivf.group(1)}'s lists"))
    for pq in re.finditer(r"PQ(\d+)(?:x(\d+))?", factory):
        nbits = int(pq.group(2) or 8)
        needs.append((2 ** nbits, f"{pq.group(0)}'s {2 ** nbits} centroids per sub-quantiser"))
    return max(needs)


def check_test_queries(counts: QueryCounts, recall_at: list[int], split: str) -> None:
    """Refuse an evaluation split where no query has a positive, or recall@k deeper than its gallery (a list
    without queries or gallery is left to the evaluation stages, which say so)."""
    if not counts.queries or not counts.gallery:
        return
    if not counts.with_positive:
        raise RdistillError(f"{split}: none of its {counts.queries} queries has a positive in its gallery of "
                            f"{counts.gallery} images (another image of its class); mAP is undefined")
    deep = [k for k in recall_at if k > counts.gallery]
    if split == "the test split" and deep:
        raise RdistillError(f"evaluate.recall_at: k={deep[0]} exceeds the test gallery of {counts.gallery} images; "
                            f"set evaluate.recall_at to values ≤ {counts.gallery}")


def check_revisited(truth: dict | None, source: str) -> None:
    """Refuse a revisited ground truth with a setting (easy, medium, hard) in which no query has a positive."""
    if not truth:
        return
    queries = truth["queries"]
    positives = {"easy": lambda q: q["easy"], "medium": lambda q: q["easy"] + q["hard"], "hard": lambda q: q["hard"]}
    for setting, of in positives.items():
        if queries and not any(of(q) for q in queries):
            raise RdistillError(f"{source}: in the {setting} setting none of its {len(queries)} queries has a positive "
                                "in the gallery; the revisited protocol scores each setting")


def check_dataset(params: Params, labels: np.ndarray, splits: np.ndarray, cameras: np.ndarray | None,
                  ground_truth: dict | None, source: str) -> None:
    """Every size check that the prepared rows allow, first failure raised (prepare calls it before writing)."""
    labels, splits = np.asarray(labels), np.asarray(splits)
    train_labels = labels[splits == "train"]
    if not np.isin(splits, ("train", "val")).any():  # an evaluation set alone (e.g. rOxford without train_from)
        log.warning("%s has no training images: whitening, mining and training cannot run on this list "
                    "(prepare.train_from adds training images)", source)
    else:
        check_teacher_fitting(params, train_labels)
        for kind, name, spec in students_of(params):
            check_student(params, kind, name, spec.method, spec.recipe, train_labels,
                          held_out=int((splits == "val").sum()))
        check_mine_k(params.mine.k, len(train_labels))
        check_components(params.whiten.n_components, len(train_labels))
    if ground_truth:
        check_revisited(ground_truth, source)
    else:
        queries = np.flatnonzero(np.isin(splits, ("query", "test")))
        gallery = np.flatnonzero(np.isin(splits, ("gallery", "test")))
        check_test_queries(class_query_counts(labels, queries, gallery, cameras), params.evaluate.recall_at,
                           "the test split")
    held_out = np.flatnonzero(splits == "val")
    if len(held_out) and not class_query_counts(labels, held_out, held_out).with_positive:
        raise RdistillError(f"prepare.validation: {params.prepare.validation:g} holds out {len(held_out)} images, none "
                            "with another of its class held out (validation mAP is undefined); hold out more, "
                            "or set 0 for no validation split")
