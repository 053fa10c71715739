"""Stage `prepare`: the image list (path,label,split[,camera][,bbox]) every later stage reads."""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np

from pipeline import layout
from pipeline.data.checks import check_images
from pipeline.data.roots import image_roots, relative_ids, source_root
from pipeline.data.sizes import check_dataset, check_validation
from pipeline.data.validation import hold_out_validation, holds_out_images, validation_size
from pipeline.data.digits import export_digits
from pipeline.data.importers import Imported
from pipeline.data.importers.combine import import_list, with_training_rows, without_rows
from pipeline.data.importers.distractors import import_distractors, with_gallery_rows
from pipeline.data.importers.images import import_folder, import_mnist
from pipeline.data.importers.revisited import import_revisited
from pipeline.data.importers.tables import import_gldv2, import_inshop, import_reid, import_sop
from pipeline.data.listfile import write_list
from pipeline.errors import RdistillError
from pipeline.io import atomic_path
from pipeline.params import PrepareParams, SourceParams, load_params

log = logging.getLogger(__name__)


def import_source(p: SourceParams, seed: int) -> Imported:
    """Rows of the configured source (images exported under data/prepared when the source has no files)."""
    if p.source == "sklearn_digits":
        return export_digits(layout.PREPARED, p.n_train, seed, p.limit)
    if p.source == "mnist":
        return import_mnist(p.root, layout.PREPARED, p.limit)
    if p.source == "folder":
        return import_folder(p.root, p.train_fraction, seed)
    if p.source == "revisited":
        return import_revisited(p.root, p.name)
    if p.source == "gldv2":
        return import_gldv2(p.list, p.root)
    if p.source == "sop":
        return import_sop(p.root)
    if p.source == "inshop":
        return import_inshop(p.root)
    if p.source == "reid":
        return import_reid(p.root)
    return import_list(p.list, p.root)


def write_skipped(bad: dict[int, str], rows_before: int) -> None:
    """data/prepared/skipped.csv: every row left out and why (header only when none was)."""
    with atomic_path(layout.SKIPPED) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["row", "reason"])
        writer.writerows(sorted(bad.items()))
    if bad:
        log.warning("left out %d of %d images that cannot be decoded; see %s", len(bad), rows_before, layout.SKIPPED)


def gather(p: PrepareParams, seed: int) -> tuple[Imported, list[str]]:
    """Rows of the main source plus, when configured, the training rows of `train_from` and the
    distractors of `gallery_from` (gallery rows after every other row, so ground-truth positions hold),
    and the root each row's id is relative to (its parameter's name; '' for data/prepared)."""
    rows = import_source(p, seed)
    roots = ["prepare.root" if source_root(p) is not None else ""] * len(rows.paths)
    if p.train_from is not None:
        before = len(rows.paths)
        rows, repeated = with_training_rows(rows, import_source(p.train_from, seed))
        kind = "prepare.train_from.root" if source_root(p.train_from) is not None else ""
        roots += [kind] * (len(rows.paths) - before)
        if repeated:
            log.warning("prepare.train_from (%s): %d training images are already rows of prepare.source (%s), "
                        "e.g. %s; they are left out of training", p.train_from.source, len(repeated), p.source,
                        repeated[0])
    if p.gallery_from is not None:
        before = len(rows.paths)
        rows = with_gallery_rows(rows, import_distractors(p.gallery_from.list, p.gallery_from.root))
        roots += ["prepare.gallery_from.root"] * (len(rows.paths) - before)
    return rows, roots


def portable_ids(paths: list[Path], roots: list[str], folders: dict[str, Path]) -> list[str]:
    """Each row's path relative to its root (data/prepared for rows without one), `/`-separated."""
    ids = [""] * len(paths)
    for root in dict.fromkeys(roots):
        rows = [i for i, r in enumerate(roots) if r == root]
        for i, found in zip(rows, relative_ids([paths[i] for i in rows], folders.get(root, layout.PREPARED))):
            ids[i] = found
    return ids


def prepare(params_path: Path) -> None:
    """Write data/prepared/list.csv (with each image's md5 when images are checked) and ground_truth.json."""
    params = load_params(params_path)
    p = params.prepare
    rows, roots = gather(p, params.seed)
    bad, digests = check_images(rows.paths) if p.check_images else ({}, None)
    if bad and p.on_bad_image == "fail":
        row = min(bad)
        raise RdistillError(f"{bad[row]} (row {row}); set prepare.on_bad_image: skip to leave such images out")
    rows = without_rows(rows, bad)
    roots = [root for row, root in enumerate(roots) if row not in bad]
    n_train = rows.splits.count("train")
    labels, before = np.asarray(rows.labels), np.asarray(rows.splits)
    splits = hold_out_validation(labels, before, validation_size(p.validation, n_train), params.seed)
    check_validation(p.validation, n_train, labels[splits == "train"], labels[splits == "val"],
                     holds_out_images(labels, before))
    check_dataset(params, labels, splits, None if rows.cameras is None else np.asarray(rows.cameras),
                  rows.ground_truth, p.name or p.source)
    rows.splits = splits.tolist()
    if digests is not None:
        digests = [d for row, d in enumerate(digests) if row not in bad]
    write_skipped(bad, rows_before=len(rows.paths) + len(bad))
    ids = portable_ids(rows.paths, roots, image_roots(p))
    # Always written (null without a revisited ground truth), so that stages can depend on it.
    with atomic_path(layout.GROUND_TRUTH) as tmp:
        tmp.write_text(json.dumps(rows.ground_truth))
    write_list(layout.LIST, ids, rows.labels, rows.splits, rows.cameras, rows.bboxes, digests,
               roots if any(roots) else None)
