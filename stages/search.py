"""`rdistill search`: a student's top hits for a query image in a folder of images (not a DVC stage).

The gallery's descriptors and FAISS index are kept in data/search/<student>/, keyed by the folder's
path; they are reused while the folder's files (paths, sizes, modification times), the student's
weights and the scales are unchanged, and recomputed otherwise.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import faiss
import numpy as np

from pipeline import layout
from pipeline.data.dataset import ImageListDataset, eval_transform, make_loader
from pipeline.data.h5 import open_complete
from pipeline.data.rows import FeatureRows, read_all
from pipeline.errors import RdistillError
from pipeline.features.extract import describe, describe_to_file
from pipeline.index.search import load_index, save_index
from pipeline.io import atomic_path, sha256_file
from pipeline.models.weights import load_student
from pipeline.params import load_params
from pipeline.report.grid import retrieval_grid
from pipeline.runtime import device
from pipeline.search import folder_fingerprint, gallery_files, gallery_index, top_hits

log = logging.getLogger(__name__)


def image_loader(files: list[Path], image_size: int, batch_size: int):
    """Batches of the files' images as evaluation prepares them (longer side at image_size)."""
    dataset = ImageListDataset(files, np.full(len(files), -1), np.arange(len(files)), eval_transform(image_size),
                               decode_size=image_size)
    return make_loader(dataset, batch_size, 0, by_shape=True)


def cached_gallery(net, checkpoint: dict, weights: Path, folder: Path, scales: list[float], batch_size: int,
                   cache: Path) -> tuple[list[Path], faiss.Index]:
    """The gallery's files and index: from the cache when its key matches, else described and indexed anew."""
    files = gallery_files(folder)
    key = {"folder": str(folder.resolve()), "fingerprint": folder_fingerprint(folder, files),
           "student_sha256": sha256_file(weights), "scales": list(scales)}
    stem = cache / hashlib.sha256(key["folder"].encode()).hexdigest()[:16]
    features, index_path = stem.with_suffix(".h5"), stem.with_suffix(".faiss")
    if features.is_file() and index_path.is_file():
        h5, attrs = open_complete(features)
        h5.close()
        if all(attrs.get(k) == v for k, v in key.items()):
            log.info("search: reusing the gallery's descriptors (%d images, %s)", len(files), features)
            return files, load_index(index_path)
    log.info("search: describing %d gallery images of %s", len(files), folder)
    cache.mkdir(parents=True, exist_ok=True)
    describe_to_file(net, image_loader(files, checkpoint["image_size"], batch_size), scales,
                     [str(f.relative_to(folder)) for f in files], len(files), device(), features, "gallery", key)
    with FeatureRows(features) as rows:
        index = gallery_index(read_all(rows))
    with atomic_path(index_path) as tmp:
        save_index(index, tmp)
    return files, index


def search(name: str, params_path: Path, gallery: Path, query: Path, top: int = 10, as_json: bool = False,
           grid: Path | None = None) -> str:
    """The student's `top` hits for `query` among the images of `gallery`, as a table or JSON; writes a grid PNG."""
    params = load_params(params_path)
    scales, batch_size = params.evaluate.scales, params.evaluate.batch_size
    weights = layout.student_weights(name, params.training_seeds()[0])
    net, checkpoint = load_student(weights)
    if not query.is_file():
        raise RdistillError(f"{query}: query image not found")
    files, index = cached_gallery(net, checkpoint, weights, gallery, scales, batch_size, layout.search_cache(name))
    (_, descriptor), = describe(net, image_loader([query], checkpoint["image_size"], 1), scales, 1, device(), "query")
    scores, hits = top_hits(index, descriptor[0], top)
    grid = grid or layout.search_cache(name) / f"{query.stem}.png"
    grid.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(grid) as tmp:
        retrieval_grid([(query, None)], [[files[i] for i in hits]], [[None] * len(hits)]).save(tmp, format="PNG")
    results = [{"rank": r + 1, "score": round(float(s), 6), "path": str(files[i])} for r, (s, i) in enumerate(zip(scores, hits))]
    if as_json:
        return json.dumps({"student": name, "query": str(query), "gallery": str(gallery), "hits": results,
                           "grid": str(grid)}, indent=2)
    lines = [f"{name}: top {len(results)} of {len(files)} images in {gallery} for {query}", "rank  score     image"]
    lines += [f"{h['rank']:>4}  {h['score']:.4f}  {h['path']}" for h in results]
    return "\n".join(lines + [f"grid: {grid}"])
