"""Stage `inputs`: fingerprints of what the pipeline reads from outside the repository, so that `dvc repro`
sees a change to them: data/inputs/images.json (every listed image and the list itself: ids, labels,
splits, each file's size and md5) for `prepare`, data/inputs/teachers/T.json (a teacher's weights, the
start it is fine-tuned from, or its imported feature files) for that teacher's stages, and
data/inputs/student.json (train.student.init) for the students' training.

It runs at every `dvc repro` (always_changed) and rewrites a file only when the content changed. Its
outputs are committed to git, not cached: a teammate whose files are the same, wherever they lie,
finds nothing changed. A weights or feature file absent from this machine keeps the committed
fingerprint (a teammate training from the pulled teacher does not need the checkpoint).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from pipeline import layout
from pipeline.data.fingerprint import DigestMemo, rows_digest
from pipeline.data.roots import image_roots
from pipeline.io import write_json
from pipeline.local_paths import names_file, workspace_of
from pipeline.params import Params, load_params

log = logging.getLogger(__name__)


def images_fingerprint(params: Params, memo: DigestMemo) -> dict:
    """What `prepare` reads: the rows its sources give and every image's content (no decoding)."""
    p = params.prepare
    sources = [p.source] + ([p.train_from.source] if p.train_from is not None else [])
    if "sklearn_digits" in sources:  # the images ship inside scikit-learn; prepare's params say which
        return {"source": "sklearn_digits"}
    if "mnist" in sources:  # IDX files, exported to PNG by prepare
        files = sorted(f for f in Path(p.root).iterdir() if f.is_file())
        return {"source": "mnist", "files": {f.name: md5 for f, (_, md5) in zip(files, memo.digests(files))}}
    from stages.prepare import gather, portable_ids
    rows, roots = gather(p, params.seed)
    folders = image_roots(p)
    ids = portable_ids(rows.paths, roots, folders)
    stamps = memo.digests(rows.paths, lambda i: f"row {i} ({ids[i]}) under {roots[i] or 'data/prepared'} "
                                                f"({folders.get(roots[i], 'data/prepared')} on this machine)")
    cameras = rows.cameras or [""] * len(ids)
    bboxes = rows.bboxes or [None] * len(ids)
    lines = (f"{root}\t{i}\t{label}\t{split}\t{camera}\t{bbox or ''}\t{size}\t{md5}" for root, i, label, split, camera,
             bbox, (size, md5) in zip(roots, ids, rows.labels, rows.splits, cameras, bboxes, stamps))
    counts = {name or "data/prepared": roots.count(name) for name in dict.fromkeys(roots)}
    return {"source": p.source, "rows": len(ids), "rows_by_root": counts, "sha256": rows_digest(lines),
            "ground_truth_sha256": rows_digest([json.dumps(rows.ground_truth, sort_keys=True)])}


def files_fingerprint(values: dict[str, str | None], memo: DigestMemo, committed: dict | None) -> dict:
    """Named files by content (other values as they are); a file absent here keeps the committed entry."""
    out = {}
    for key, value in values.items():
        if value is None or not names_file(value):
            out[key] = value
        elif Path(value).is_file():
            size, md5 = memo.digests([value])[0]
            out[key] = {"size": size, "md5": md5}
        elif committed and isinstance(committed.get(key), dict):
            log.info("%s (%s) is not on this machine: its committed fingerprint stands", value, key)
            out[key] = committed[key]
        else:
            out[key] = {"missing": value}
    return out


def write_if_changed(path: Path, payload: dict) -> bool:
    """Write `payload` as JSON unless the file already holds it (its time then stays)."""
    if path.is_file():
        try:
            if json.loads(path.read_text()) == payload:
                return False
        except ValueError:
            pass
    write_json(path, payload)
    return True


def read_committed(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def inputs(params_path: Path) -> str:
    """Write data/inputs/images.json and data/inputs/teachers/T.json; return a one-line summary."""
    params = load_params(params_path)
    started = time.perf_counter()
    with DigestMemo(workspace_of(Path.cwd()) / layout.DIGEST_MEMO) as memo:
        images = images_fingerprint(params, memo)
        changed = ["images"] if write_if_changed(layout.INPUTS / "images.json", images) else []
        for name, spec in params.teachers.items():
            path = layout.teacher_inputs(name)
            files = {key: getattr(spec, key) for key in ("weights", "features", "ids", "init")}
            if write_if_changed(path, files_fingerprint(files, memo, read_committed(path))):
                changed.append(name)
        student = layout.INPUTS / "student.json"
        if write_if_changed(student, files_fingerprint({"init": params.train.student.init}, memo, read_committed(student))):
            changed.append("student")
        hashed = memo.hashed
    for stale in (layout.INPUTS / "teachers").glob("*.json"):  # teachers no longer declared
        if stale.stem not in params.teachers:
            stale.unlink()
    rows = images.get("rows")
    return (f"inputs: {f'{rows} images, ' if rows else ''}{hashed} files hashed, "
            f"{'changed: ' + ', '.join(changed) if changed else 'nothing changed'} "
            f"({time.perf_counter() - started:.2f} s)")
