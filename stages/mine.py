"""Stage `mine`: FAISS index over a teacher's whitened training features, top-K neighbours of each.

The training rows are read once, block by block, into one float32 array (N × D × 4 bytes: 3.3 GB
for 1.6M × 512): the index is built from it and every shortlist is re-ranked from it by row
gather. `mine.index: auto` picks exact search for small sets and IVF-PQ above
pipeline.index.search.EXACT_BELOW rows, and on a GPU that FAISS cannot use (no faiss-gpu) `exact`: torch's
blocked top-K on that GPU (pipeline.index.exact_torch). With `mine.refine` > 0 the index's lists are then refined
by their neighbours' lists (pipeline.index.refine). Recall@K against exact search is measured on an
even sample of up to 1,000 training images, before and after the refinement.

The trained index and each finished query batch are kept in a scratch folder, so a killed run
resumes where it stopped.
"""
from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np

from pipeline import layout
from pipeline.data.h5 import write_arrays
from pipeline.data.rows import ArrayRows, read_all
from pipeline.data.sizes import check_mine_k, index_minimum
from pipeline.index.search import (auto_factory, auto_nprobe, check_gpu_k, load_index, dot_rounding_bound,
                                   neighbours_of, recall_with_ties, save_index, set_nprobe)
from pipeline.index.refine import refine_neighbours
from pipeline.index.stream import build_streamed_index, exact_top_k, neighbours_in_batches
from pipeline.io import atomic_path, write_json
from pipeline.params import load_params
from pipeline.provenance import library_versions, open_checked_features
from pipeline.machine import gpu_names
from pipeline.scratch import ChunkStore
from stages.common import prepared_list

log = logging.getLogger(__name__)


RECALL_SAMPLE = 1000  # training images whose exact neighbours are computed to report recall@K


def torch_gpu() -> bool:
    """Whether torch sees a CUDA GPU to mine on; torch (0.5 GB, 2 s) is imported only where the driver lists one."""
    if not gpu_names():
        return False
    from pipeline.runtime import device
    return device().type == "cuda"


def mine(name: str, params_path: Path) -> None:
    """Write data/neighbours/<name>.h5 (rows, indices, similarities) and metrics/mine/<name>.json.

    Memory: the training rows' features, the index, one query batch and the (N, K) lists.
    """
    p = load_params(params_path).mine
    image_list, list_sha = prepared_list()
    source = layout.whitened_features(name)
    train = image_list.train_rows()
    check_mine_k(p.k, len(train))
    with open_checked_features(source, list_sha, name, rows=train) as reader:
        whitened_attrs = reader.attrs
        feats = read_all(reader)
    factory = (auto_factory(len(train), feats.shape[1], faiss.get_num_gpus() > 0, torch_gpu())
               if p.index == "auto" else p.index)
    needed, why = index_minimum(factory)
    if len(train) < needed:  # FAISS cannot train it; exact search is what it approximates, and cheap at this size
        log.warning("mine.index: %s needs at least %d training rows (%s), %d here: exact search instead",
                    factory, needed, why, len(train))
        factory = "Flat"
    exact = factory in ("Flat", "exact")
    shortlist = 0 if exact else p.shortlist
    if shortlist >= len(train):  # every row is a candidate: the same lists as a shortlist of N − 1
        log.info("mine.shortlist: %d of %d training rows; every row is re-ranked", shortlist, len(train))
        shortlist = len(train) - 1
    nprobe = auto_nprobe(factory) if p.nprobe == "auto" else p.nprobe
    refine = 0 if exact else p.refine  # exact lists have nothing to gain
    attrs = {"teacher": name, "list_sha256": list_sha, "index": factory, "k": p.k, "shortlist": shortlist,
             "nprobe": nprobe, "refine": refine,
             "weights_sha256": whitened_attrs["weights_sha256"], "versions": library_versions()}
    key = {**attrs, "batch_size": p.batch_size}
    store = ChunkStore(layout.scratch("mine", name), key)
    rows = ArrayRows(feats)
    if factory == "exact":
        from pipeline.index.exact_torch import ExactSearch
        from pipeline.runtime import device
        index = ExactSearch(feats, device())
        search = lambda start, stop: index.search(start, stop, p.k)  # noqa: E731
    else:
        index_file = store.file("index.faiss")
        if index_file.is_file():
            index = load_index(index_file)
        else:
            index = build_streamed_index(rows, factory)
            with atomic_path(index_file) as tmp:
                save_index(index, tmp)
        set_nprobe(index, nprobe)
        check_gpu_k(index, min(max(p.k, shortlist) + 1, len(train)), "mine.k / mine.shortlist",
                    "set mine.index: exact (torch on the GPU, any k) or ask for fewer")
        search = lambda start, stop: neighbours_of(index, feats, start, stop, p.k, shortlist)  # noqa: E731
    sims, ids = neighbours_in_batches(store, len(train), p.k, p.batch_size, search, f"mine {name}")
    del index, search
    sample = np.unique(np.linspace(0, len(train) - 1, min(RECALL_SAMPLE, len(train))).astype(np.int64))
    exact_sims, _ = exact_top_k(rows, sample, p.k)
    tolerance = dot_rounding_bound(feats[sample], feats)

    def recall_of(found: np.ndarray) -> float:  # near-ties that FAISS and numpy round apart count as found
        found_sims = np.concatenate([np.einsum("nd,nkd->nk", feats[part], feats[found[part]])  # 64 queries at a time
                                     for part in np.array_split(sample, max(1, len(sample) // 64))])
        return recall_with_ties(found_sims, exact_sims, tolerance)

    recall = {"recall_at_k": recall_of(ids)}
    if refine:
        recall["recall_at_k_index"] = recall["recall_at_k"]
        sims, ids = neighbours_in_batches(ChunkStore(store.file("refine"), key),
                                          len(train), p.k, p.batch_size,
                                          lambda start, stop: refine_neighbours(feats, ids, start, stop, refine),
                                          f"refine {name}")
        recall["recall_at_k"] = recall_of(ids)
    del rows, feats
    write_arrays(layout.neighbours(name), {"rows": train, "indices": train[ids], "similarities": sims}, attrs)
    log.info("mined %d neighbours of %d images with %s%s: recall@%d %.3f (on %d images)", p.k, len(train), factory,
             f", refined by {refine}" if refine else "", p.k, recall["recall_at_k"], len(sample))
    write_json(layout.metrics("mine", name), {"index": factory, "k": p.k, "shortlist": shortlist, "nprobe": nprobe,
                                              "refine": refine, "n_train": int(len(train)), **recall,
                                              "recall_sample": int(len(sample))})
    store.clear()
