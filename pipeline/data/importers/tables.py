"""Importers of text-listed benchmarks: SOP, In-Shop, GLDv2 train CSV and MSMT17/Market-style re-id lists."""
from __future__ import annotations

import csv
import re
from pathlib import Path

from pipeline.data.importers import Imported
from pipeline.errors import RdistillError


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise RdistillError(f"{path}: list file not found")
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _fields(path: Path, number: int, line: str, count: int) -> list[str]:
    parts = line.split()
    if len(parts) < count:
        raise RdistillError(f"{path}:{number}: expected {count} fields, found {len(parts)}")
    return parts


def import_sop(root: str | Path) -> Imported:
    """Stanford Online Products: Ebay_train.txt -> train, Ebay_test.txt -> test (`image_id class_id super_class_id path`)."""
    root, out = Path(root), Imported([], [], [])
    for file, split in (("Ebay_train.txt", "train"), ("Ebay_test.txt", "test")):
        path = root / file
        for number, line in enumerate(_lines(path)[1:], start=2):  # first line is the header
            _, class_id, _, rel = _fields(path, number, line, 4)[:4]
            out.paths.append(root / rel)
            out.labels.append(int(class_id))
            out.splits.append(split)
    return out


def import_inshop(root: str | Path) -> Imported:
    """In-Shop: list_eval_partition.txt (count, header, then `image_name item_id evaluation_status`)."""
    root, out = Path(root), Imported([], [], [])
    path = root / "list_eval_partition.txt"
    for number, line in enumerate(_lines(path)[2:], start=3):
        image, item, status = _fields(path, number, line, 3)[:3]
        if status not in ("train", "query", "gallery"):
            raise RdistillError(f"{path}:{number}: unknown evaluation_status {status!r}")
        digits = re.sub(r"\D", "", item)
        if not digits:
            raise RdistillError(f"{path}:{number}: item_id {item!r} has no number")
        out.paths.append(root / image)
        out.labels.append(int(digits))
        out.splits.append(status)
    return out


def gldv2_path(root: Path, image_id: str) -> Path:
    """GLDv2 layout: <root>/a/b/c/abc….jpg for image id abc…."""
    return root / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"


def import_gldv2(csv_path: str | Path, root: str | Path) -> Imported:
    """Google Landmarks v2 training CSV (`id,landmark_id`) -> train rows."""
    csv_path, root, out = Path(csv_path), Path(root), Imported([], [], [])
    if not csv_path.is_file():
        raise RdistillError(f"{csv_path}: GLDv2 CSV not found")
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"id", "landmark_id"} <= set(reader.fieldnames or ()):
            raise RdistillError(f"{csv_path}: header must contain id,landmark_id (got {reader.fieldnames})")
        for number, row in enumerate(reader, start=2):
            if len(row["id"]) < 3 or not row["landmark_id"].isdigit():
                raise RdistillError(f"{csv_path}:{number}: bad row {row['id']!r},{row['landmark_id']!r}")
            out.paths.append(gldv2_path(root, row["id"]))
            out.labels.append(int(row["landmark_id"]))
            out.splits.append("train")
    return out


def camera_of(filename: str) -> int:
    """Camera id from a re-id file name: Market style `…_c3s1_…`, or MSMT17 style `pid_idx_cam_…`."""
    market = re.search(r"_c(\d+)", filename)
    if market:
        return int(market.group(1))
    parts = Path(filename).stem.split("_")
    if len(parts) >= 3 and parts[2].isdigit():
        return int(parts[2])
    raise RdistillError(f"{filename}: no camera id in the file name")


def import_reid(root: str | Path) -> Imported:
    """MSMT17-style lists (`rel_path pid`): list_train.txt (under train/), list_query.txt and list_gallery.txt (under test/)."""
    root, out = Path(root), Imported([], [], [], cameras=[])
    for file, folder, split in (("list_train.txt", "train", "train"), ("list_query.txt", "test", "query"),
                                ("list_gallery.txt", "test", "gallery")):
        path = root / file
        for number, line in enumerate(_lines(path), start=1):
            rel, pid = _fields(path, number, line, 2)[:2]
            out.paths.append(root / folder / rel)
            out.labels.append(int(pid))
            out.splits.append(split)
            out.cameras.append(camera_of(rel))
    return out
