"""Search a folder of images with a student: the gallery described once (cached while the folder and the
student are unchanged), an exact or IVF-Flat FAISS index, and the top hits of a query image."""
from __future__ import annotations

import hashlib
from pathlib import Path

import faiss
import numpy as np

from pipeline.errors import RdistillError
from pipeline.index.search import EXACT_BELOW, ROWS_PER_LIST, auto_nprobe, check_gpu_k, new_index, set_nprobe

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def gallery_files(folder: Path) -> list[Path]:
    """Every image file under `folder` (by suffix, recursively, hidden folders left out), in path order."""
    if not folder.is_dir():
        raise RdistillError(f"{folder}: gallery folder not found")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        raise RdistillError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def folder_fingerprint(folder: Path, files: list[Path]) -> str:
    """sha256 of every file's relative path, size and modification time: changes when any image does."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def gallery_index(feats: np.ndarray) -> faiss.Index:
    """An inner-product index over l2-normalised gallery features: exact up to EXACT_BELOW images, above
    IVF-Flat with about ROWS_PER_LIST images a list (exact inside the lists it visits)."""
    n, dim = feats.shape
    if n <= EXACT_BELOW:
        index = new_index(dim, "Flat")
    else:
        factory = f"IVF{1 << max(4, round(np.log2(n / ROWS_PER_LIST)))},Flat"
        index = new_index(dim, factory)
        index.train(feats)
        set_nprobe(index, auto_nprobe(factory))
    index.add(feats)
    return index


def top_hits(index: faiss.Index, query: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, gallery positions) of the `top` best gallery images for one query descriptor (D,), searched
    where the index lives (load_index already moves a cached one to the GPUs; one query needs no copy)."""
    check_gpu_k(index, min(top, index.ntotal), "--top", "ask for fewer hits")
    scores, ids = index.search(np.ascontiguousarray(query[None], dtype=np.float32), min(top, index.ntotal))
    keep = ids[0] >= 0
    return scores[0][keep], ids[0][keep]
