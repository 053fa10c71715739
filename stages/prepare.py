"""Stage `prepare`: the image list (path,label,split[,camera][,bbox]) every later stage reads."""
from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline import layout
from pipeline.data.digits import export_digits
from pipeline.data.importers import Imported
from pipeline.data.importers.images import import_folder, import_mnist
from pipeline.data.importers.revisited import import_revisited
from pipeline.data.importers.tables import import_gldv2, import_inshop, import_reid, import_sop
from pipeline.data.listfile import read_list, write_list
from pipeline.errors import RdistillError
from pipeline.io import atomic_path
from pipeline.params import PrepareParams, SourceParams, load_params


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
    user = read_list(p.list)
    return Imported(list(user.paths), [int(x) for x in user.labels], list(user.splits),
                    None if user.cameras is None else [int(c) for c in user.cameras], user.bboxes)


def with_training_rows(rows: Imported, extra: Imported) -> Imported:
    """`rows` followed by the `train` rows of `extra` (ground-truth rows keep their positions)."""
    keep = [i for i, split in enumerate(extra.splits) if split == "train"]
    cameras = None
    if rows.cameras is not None or extra.cameras is not None:
        cameras = (rows.cameras or [-1] * len(rows.paths)) + [(extra.cameras or [-1] * len(extra.paths))[i] for i in keep]
    bboxes = None
    if rows.bboxes is not None or extra.bboxes is not None:
        bboxes = (rows.bboxes or [None] * len(rows.paths)) + [(extra.bboxes or [None] * len(extra.paths))[i] for i in keep]
    return Imported(rows.paths + [extra.paths[i] for i in keep], rows.labels + [extra.labels[i] for i in keep],
                    rows.splits + ["train"] * len(keep), cameras, bboxes, rows.ground_truth)


def gather(p: PrepareParams, seed: int) -> Imported:
    """Rows of the main source plus, when configured, the training rows of `train_from`."""
    rows = import_source(p, seed)
    return rows if p.train_from is None else with_training_rows(rows, import_source(p.train_from, seed))


def prepare(params_path: Path) -> None:
    """Write data/prepared/list.csv (and ground_truth.json for the revisited protocol)."""
    params = load_params(params_path)
    rows = gather(params.prepare, params.seed)
    missing = next((path for path in rows.paths if not path.is_file()), None)
    if missing is not None:
        raise RdistillError(f"{missing}: image listed by the {params.prepare.source} source does not exist")
    base = layout.PREPARED.resolve()
    relative = [os.path.relpath(Path(path).resolve(), base) for path in rows.paths]
    if rows.ground_truth is not None:
        with atomic_path(layout.GROUND_TRUTH) as tmp:
            tmp.write_text(json.dumps(rows.ground_truth))
    write_list(layout.LIST, relative, rows.labels, rows.splits, rows.cameras, rows.bboxes)
