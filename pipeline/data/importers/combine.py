"""A user's own list as a source, and the ways prepare combines sources: extra training rows, rows left out."""
from __future__ import annotations

import os
from pathlib import Path

from pipeline.data.checks import outside_root
from pipeline.data.importers import Imported
from pipeline.data.listfile import read_list
from pipeline.errors import RdistillError


def import_list(list_path: str | Path, root: str | Path | None) -> Imported:
    """Rows of a user's list (path,label,split[,camera][,bbox]); refuses paths outside the dataset root
    (`root`, or the list's folder)."""
    user = read_list(list_path)
    dataset_root = Path(root) if root else user.source.parent
    paths = user.paths.strings()
    row = outside_root(paths, dataset_root)
    if row is not None:
        raise RdistillError(f"{user.source}: row {row} path {user.ids[row]!r} lies outside the dataset root {dataset_root}")
    return Imported(paths, [int(x) for x in user.labels], list(user.splits),
                    None if user.cameras is None else [int(c) for c in user.cameras], user.bboxes)


def with_training_rows(rows: Imported, extra: Imported) -> tuple[Imported, list[Path]]:
    """`rows` followed by the `train` rows of `extra` (ground-truth rows keep their positions), and the
    training images of `extra` left out because `rows` already holds them (a list row may not repeat)."""
    present = {os.path.normpath(path) for path in rows.paths}
    train = [i for i, split in enumerate(extra.splits) if split == "train"]
    keep = [i for i in train if os.path.normpath(extra.paths[i]) not in present]
    repeated = [Path(extra.paths[i]) for i in train if os.path.normpath(extra.paths[i]) in present]
    cameras = None
    if rows.cameras is not None or extra.cameras is not None:
        cameras = (rows.cameras or [-1] * len(rows.paths)) + [(extra.cameras or [-1] * len(extra.paths))[i] for i in keep]
    bboxes = None
    if rows.bboxes is not None or extra.bboxes is not None:
        bboxes = (rows.bboxes or [None] * len(rows.paths)) + [(extra.bboxes or [None] * len(extra.paths))[i] for i in keep]
    return Imported(rows.paths + [extra.paths[i] for i in keep], rows.labels + [extra.labels[i] for i in keep],
                    rows.splits + ["train"] * len(keep), cameras, bboxes, rows.ground_truth), repeated


def without_rows(rows: Imported, bad: dict[int, str]) -> Imported:
    """`rows` less the rows in `bad`; ground-truth rows renumbered, and a query whose image is bad refused."""
    if not bad:
        return rows
    keep = [i for i in range(len(rows.paths)) if i not in bad]
    new_index = {old: new for new, old in enumerate(keep)}
    pick = (lambda values: None if values is None else [values[i] for i in keep])
    truth = rows.ground_truth
    if truth is not None:
        lost = [q["row"] for q in truth["queries"] if q["row"] in bad]
        if lost:
            raise RdistillError(f"{bad[lost[0]]}: a query of the ground truth cannot be skipped")
        truth = {**truth, "queries": [{"row": new_index[q["row"]],
                                       **{k: [new_index[r] for r in q[k] if r in new_index] for k in ("easy", "hard", "junk")}}
                                      for q in truth["queries"]]}
    return Imported(pick(rows.paths), pick(rows.labels), pick(rows.splits), pick(rows.cameras), pick(rows.bboxes), truth)
