"""Revisited Oxford / Paris: `gnd_<name>.pkl` (imlist, qimlist, gnd with bbx/easy/hard/junk), images in jpg/."""
from __future__ import annotations

import pickle
from pathlib import Path

from pipeline.data.importers import Imported
from pipeline.errors import RdistillError

GND_KEYS = ("imlist", "qimlist", "gnd")
QUERY_KEYS = ("bbx", "easy", "hard", "junk")
# What a ground-truth pickle may build besides lists, dicts, strings and numbers: numpy arrays and scalars.
# Anything else (os.system, a class of some module) is refused before it runs: a downloaded file never runs code.
ALLOWED_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                   ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
                   ("numpy._core.multiarray", "scalar")}


class DataOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds data only: every global outside ALLOWED_GLOBALS is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a ground-truth file has no use for; "
                                         f"refused without running it")
        return super().find_class(module, name)


def import_revisited(root: str | Path, name: str) -> Imported:
    """Gallery rows (imlist) then query rows (qimlist, cropped to their bbx); ground truth in list rows."""
    root = Path(root)
    gnd_path = root / f"gnd_{name}.pkl"
    if not gnd_path.is_file():
        raise RdistillError(f"{gnd_path}: ground-truth file not found")
    try:
        with open(gnd_path, "rb") as f:
            cfg = DataOnlyUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise RdistillError(f"{gnd_path}: not a readable pickle ({exc})") from None
    if not isinstance(cfg, dict):
        raise RdistillError(f"{gnd_path}: expected a dict with {', '.join(GND_KEYS)}, found {type(cfg).__name__}")
    missing = [k for k in GND_KEYS if k not in cfg]
    if missing:
        raise RdistillError(f"{gnd_path}: missing key {missing[0]!r}")
    n_gallery, queries = len(cfg["imlist"]), []
    for i, q in enumerate(cfg["gnd"]):
        absent = [k for k in QUERY_KEYS if k not in q]
        if absent:
            raise RdistillError(f"{gnd_path}: gnd[{i}] lacks key {absent[0]!r}")
        bad = [j for k in ("easy", "hard", "junk") for j in q[k] if not 0 <= j < n_gallery]
        if bad:
            raise RdistillError(f"{gnd_path}: gnd[{i}] names gallery index {bad[0]} outside 0..{n_gallery - 1}")
        queries.append(q)
    if len(queries) != len(cfg["qimlist"]):
        raise RdistillError(f"{gnd_path}: {len(cfg['qimlist'])} queries in qimlist but {len(queries)} in gnd")
    paths = [root / "jpg" / f"{image}.jpg" for image in [*cfg["imlist"], *cfg["qimlist"]]]
    truth = [{"row": n_gallery + i, **{k: [int(j) for j in q[k]] for k in ("easy", "hard", "junk")}}
             for i, q in enumerate(queries)]
    return Imported(
        paths=paths,
        labels=[-1] * len(paths),
        splits=["gallery"] * n_gallery + ["query"] * len(queries),
        bboxes=[None] * n_gallery + [tuple(float(v) for v in q["bbx"]) for q in queries],
        ground_truth={"protocol": "revisited", "dataset": name, "queries": truth},
    )
