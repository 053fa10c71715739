"""Helpers every stage shares: the parsed list, and loading labelled training rows."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline import layout
from pipeline.data.listfile import ImageList, read_list
from pipeline.data.rows import FeatureRows
from pipeline.errors import RdistillError
from pipeline.evaluate.revisited import format_revisited
from pipeline.io import sha256_file
from pipeline.params import Params, Recipe, ensemble_teachers, recipe_of
from pipeline.provenance import require_match

if TYPE_CHECKING:  # protocols imports faiss, which stages that never score should not load
    from pipeline.evaluate.protocols import GroundTruth


def prepared_list() -> tuple[ImageList, str]:
    """The prepared image list and its sha256."""
    return read_list(layout.LIST), sha256_file(layout.LIST)


def class_indices(image_list: ImageList, rows: np.ndarray, purpose: str) -> tuple[np.ndarray, int]:
    """Labels of all rows mapped to 0..C−1 by the classes of `rows`; refuses unlabelled rows."""
    labels = image_list.labels[rows]
    if (labels < 0).any():
        row = rows[np.flatnonzero(labels < 0)[0]]
        raise RdistillError(f"{image_list.source}: row {row} ({image_list.ids[row]}) has no label, needed for {purpose}")
    classes = np.unique(labels)
    mapped = np.full(len(image_list), -1, dtype=np.int64)
    mapped[rows] = np.searchsorted(classes, labels)
    return mapped, len(classes)


def declared(table: dict, section: str, name: str, params_path) -> object:
    """The entry `name` of a params table (`teachers` or `students`); a clear error if it is not declared."""
    if name not in table:
        raise RdistillError(f"{params_path}: {section}.{name}: not declared (declared: {', '.join(table) or 'none'})")
    return table[name]


def open_checked_features(path, list_sha: str, teacher: str | None = None, rows=None) -> FeatureRows:
    """A FeatureRows reader of a feature file whose provenance matches the prepared list (and teacher)."""
    reader = FeatureRows(path, rows)
    try:
        require_match(path, reader.attrs, "list_sha256", list_sha)
        if teacher is not None:
            require_match(path, reader.attrs, "teacher", teacher)
    except Exception:
        reader.close()
        raise
    return reader


@dataclass(frozen=True)
class Student:
    """A declared student, single- or multi-teacher, with its resolved recipe."""

    name: str
    method: str
    teachers: list[str]  # distilled teachers (one but for ensembles)
    gallery: str  # the teacher of the asymmetric evaluation
    recipe: Recipe


def student(params: Params, name: str, params_path) -> Student:
    """The student `name` from `students` or `ensembles`; a clear error if neither declares it."""
    if name in params.ensembles:
        spec = params.ensembles[name]
        teachers = ensemble_teachers(params, name)
        return Student(name, spec.method, teachers, spec.gallery or teachers[0],
                       recipe_of(params.train, spec.method, spec.recipe))
    spec = declared({**params.students, **params.ensembles}, "students", name, params_path)
    return Student(name, spec.method, [spec.teacher], spec.teacher, recipe_of(params.train, spec.method, spec.recipe))


def print_revisited(truth: GroundTruth | None, result: dict, ks) -> str:
    """The papers' E/M/H lines for every setting of a revisited-protocol result ('' otherwise)."""
    if truth is None:
        return ""
    return "\n".join(f"{setting}\n{format_revisited(truth.dataset, scores, ks)}" for setting, scores in result.items()
                     if isinstance(scores, dict) and "medium" in scores)
