"""Stage `prepare`: the image list (path,label,split) every later stage reads."""
from __future__ import annotations

import os
from pathlib import Path

from pipeline import layout
from pipeline.data.digits import export_digits
from pipeline.data.listfile import read_list, write_list
from pipeline.errors import RdistillError
from pipeline.params import load_params


def prepare(params_path: Path) -> None:
    """Export the embedded digits, or check and adopt a user's list, as data/prepared/list.csv."""
    params = load_params(params_path)
    p = params.prepare
    if p.source == "sklearn_digits":
        export_digits(layout.PREPARED, p.n_train, params.seed, p.limit)
        return
    if not p.list:
        raise RdistillError(f"{params_path}: prepare.list: required when prepare.source is 'list'")
    user = read_list(p.list)
    missing = [path for path in user.paths if not path.exists()]
    if missing:
        raise RdistillError(f"{p.list}: image {missing[0]} does not exist")
    ids = [os.path.relpath(path.resolve(), layout.PREPARED.resolve()) for path in user.paths]
    write_list(layout.LIST, ids, [int(x) for x in user.labels], list(user.splits))
