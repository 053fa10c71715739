"""`rdistill init`: a complete params.yaml for your own images, every parameter written out.

Not a pipeline stage: it starts a project. Every key is present, so `dvc exp run -S key=value` accepts any
of them; defaults are for real photos (input sizes, whitening dimension, mining shortlist), the teacher is
a named pretrained network (never silently trained from scratch), and validation is a share of the
training images.
"""
from __future__ import annotations

import os
from pathlib import Path

from pipeline.data.importers.images import import_folder
from pipeline.data.listfile import read_list
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


def training_rows(images: Path | None, list_file: Path | None) -> int:
    """How many training images the source gives (before validation is held out)."""
    if images is not None:
        return import_folder(images, TRAIN_FRACTION, 0).splits.count("train")
    return int((read_list(list_file).splits == "train").sum())


def init_params(images: Path | None, list_file: Path | None, root: Path | None) -> Params:
    """The parameters for a folder of class sub-folders (`images`) or a list CSV (`list_file`)."""
    if (images is None) == (list_file is None):
        raise RdistillError("init: give exactly one of --images FOLDER or --list CSV")
    if images is not None:
        prepare = {"source": "folder", "root": os.path.abspath(images), "train_fraction": TRAIN_FRACTION}
    else:
        prepare = {"source": "list", "list": os.path.abspath(list_file),
                   "root": os.path.abspath(root or list_file.parent)}
    n_train = int(training_rows(images, list_file) * (1 - VALIDATION_SHARE))
    if n_train < 2:
        raise RdistillError(f"init: {images or list_file} gives {n_train} training image(s) after validation; "
                            f"rdistill needs training images to whiten, mine and train on")
    raw = {
        "prepare": {**prepare, "validation": VALIDATION_SHARE},
        "teachers": TEACHER,
        # PCA cannot give more components than training rows: more would be clamped noise
        "whiten": {"n_components": min(512, n_train - 1)},
        "train": {"seeds": [0], "student": {"arch": "resnet18", "image_size": 256}},
        "students": {"no_distill": {"method": "no_distill", "teacher": "resnet50"},
                     "csd": {"method": "csd", "teacher": "resnet50"}},
    }
    return Params.model_validate(raw)


def init(out: Path, images: Path | None, list_file: Path | None, root: Path | None, force: bool) -> str:
    """Write `out` (params.yaml) for the user's own images; refuse to replace one unless `force`."""
    if out.exists() and not force:
        raise RdistillError(f"{out}: already exists; --force replaces it")
    params = init_params(images, list_file, root)
    what = f"the images under {params.prepare.root}" if images is not None else f"the list {params.prepare.list}"
    with atomic_path(out) as tmp:
        tmp.write_text(HEADER.format(what=what) + annotated_yaml(params, complete=True))
    return (f"wrote {out}: {what}, teacher {next(iter(params.teachers))} "
            f"({params.teachers['resnet50'].weights}), students {', '.join(params.students)}; "
            f"`rdistill params` explains each key, `dvc repro` runs the pipeline")
