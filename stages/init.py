"""`rdistill init`: a complete params.yaml for your own images, every parameter written out.

Not a pipeline stage: it starts a project. Every key is present, so `dvc exp run -S key=value` accepts any
of them; defaults are for real photos (input sizes, whitening dimension, mining shortlist), the teacher is
a named pretrained network (never silently trained from scratch), and validation is a share of the
training images. A small dataset gets the sizes its split can feed (validation, batch, neighbours,
whitened dimension, recall depths), each change named in the command's output.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.data.importers.images import import_folder
from pipeline.data.listfile import read_list
from pipeline.data.sizes import check_dataset, class_query_counts
from pipeline.data.validation import hold_out_validation, validation_size
from pipeline.errors import RdistillError
from pipeline.io import atomic_path
from pipeline.params import Params
from pipeline.params_listing import annotated_yaml

VALIDATION_SHARE = 0.2
TRAIN_FRACTION = 0.5
TEACHER = {"resnet50": {"arch": "resnet50", "weights": "ResNet50_Weights.IMAGENET1K_V2", "image_size": 512}}
HEADER = """\
# rdistill parameters for {what}, written by `rdistill init`. Every parameter is here, with its meaning, so
# `dvc exp run -S key=value` accepts any of them. Paths that differ on another machine go in that machine's
# machine.yaml (never committed), e.g. `prepare.root: /mnt/photos`: the prepared list's ids are relative
# to the roots, so no output changes. The teacher's weights are read from the local torch cache only:
# on a machine with a network, `python -c "import torchvision; torchvision.models.resnet50(weights='IMAGENET1K_V2')"`
# puts them there; or name your own checkpoint (`weights: /path/to/checkpoint.pth`).
"""


def source_rows(images: Path | None, list_file: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, splits) of the rows the source gives, before validation is held out."""
    if images is not None:
        rows = import_folder(images, TRAIN_FRACTION, 0)
        return np.asarray(rows.labels), np.asarray(rows.splits)
    listed = read_list(list_file)
    return np.asarray(listed.labels), np.asarray(listed.splits)


def sized(raw: dict, labels: np.ndarray, splits: np.ndarray) -> tuple[dict, list[str], np.ndarray]:
    """`raw` with the sizes a small dataset cannot feed brought within it (the validation split, batch size,
    neighbours, whitened dimension, recall depths), a note of each change, and the splits with the
    validation rows `prepare` will hold out."""
    notes = []
    held = hold_out_validation(labels, splits, validation_size(VALIDATION_SHARE, int((splits == "train").sum())), 0)
    val = np.flatnonzero(held == "val")
    if (held == "train").sum() < 2 or not class_query_counts(labels, val, val).with_positive:
        raw["prepare"]["validation"], held = 0, splits
        notes.append("no validation split (too few images of a class to hold out pairs)")
    n_train = int((held == "train").sum())
    raw["whiten"] = {"n_components": min(512, n_train - 1)}  # PCA spans at most N − 1 directions
    if n_train <= 128:  # the largest batch of the default recipes (CSD's); every batch is full
        batch = 1 << int(np.log2(n_train))
        raw["train"]["override"] = {"batch_size": batch}
        notes.append(f"batches of {batch}")
    if n_train <= 64:  # mine.k's default: neighbours exclude the image itself
        raw["mine"] = {"k": n_train - 1}
        raw["train"]["csd"] = {"k": n_train - 1}
        notes.append(f"{n_train - 1} neighbours")
    gallery = int(np.isin(held, ("gallery", "test")).sum())
    if gallery < 10:
        raw["evaluate"] = {"recall_at": [k for k in (1, 5, 10) if k <= gallery] or [1]}
        notes.append(f"recall@k up to a gallery of {gallery}")
    return raw, notes, held


def init_params(images: Path | None, list_file: Path | None, root: Path | None) -> tuple[Params, list[str]]:
    """The parameters for a folder of class sub-folders (`images`) or a list CSV (`list_file`), sized to its
    rows, and what was changed for a small dataset."""
    if (images is None) == (list_file is None):
        raise RdistillError("init: give exactly one of --images FOLDER or --list CSV")
    if images is not None:
        prepare = {"source": "folder", "root": os.path.abspath(images), "train_fraction": TRAIN_FRACTION}
    else:
        prepare = {"source": "list", "list": os.path.abspath(list_file),
                   "root": os.path.abspath(root or list_file.parent)}
    labels, splits = source_rows(images, list_file)
    if (splits == "train").sum() < 2:
        raise RdistillError(f"init: {images or list_file} gives {int((splits == 'train').sum())} training image(s); "
                            f"rdistill needs training images to whiten, mine and train on")
    raw = {
        "prepare": {**prepare, "validation": VALIDATION_SHARE},
        "teachers": TEACHER,
        "train": {"seeds": [0], "student": {"arch": "resnet18", "image_size": 256}},
        "students": {"no_distill": {"method": "no_distill", "teacher": "resnet50"},
                     "csd": {"method": "csd", "teacher": "resnet50"}},
    }
    if len(np.unique(labels[(splits == "train") & (labels >= 0)])) < 2:  # labels alone teach nothing
        del raw["students"]["no_distill"]
    raw, notes, held = sized(raw, labels, splits)
    params = Params.model_validate(raw)
    check_dataset(params, labels, held, None, None, str(images or list_file))
    return params, notes


def init(out: Path, images: Path | None, list_file: Path | None, root: Path | None, force: bool) -> str:
    """Write `out` (params.yaml) for the user's own images; refuse to replace one unless `force`."""
    if out.exists() and not force:
        raise RdistillError(f"{out}: already exists; --force replaces it")
    params, notes = init_params(images, list_file, root)
    what = f"the images under {params.prepare.root}" if images is not None else f"the list {params.prepare.list}"
    with atomic_path(out) as tmp:
        tmp.write_text(HEADER.format(what=what) + annotated_yaml(params, complete=True))
    return (f"wrote {out}: {what}, teacher {next(iter(params.teachers))} "
            f"({params.teachers['resnet50'].weights}), students {', '.join(params.students)}"
            + (f"; for a small dataset: {', '.join(notes)}" if notes else "")
            + "; `rdistill params` explains each key, `dvc repro` runs the pipeline")
