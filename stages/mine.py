"""Stage `mine`: FAISS index over a teacher's whitened training features, top-K neighbours of each.

The training rows are read once, block by block, into one float32 array (N × D × 4 bytes: 3.3 GB
for 1.6M × 512): the index is built from it and every shortlist is re-ranked from it by row
gather. `mine.index: auto` picks exact search for small sets and IVF-PQ above
pipeline.index.search.EXACT_BELOW rows. Recall@K against exact search is measured on an even
sample of up to 1,000 training images.

The trained index and each finished query batch are kept in a scratch folder, so a killed run
resumes where it stopped.
"""
from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

from pipeline import layout
from pipeline.data.h5 import write_arrays
from pipeline.data.rows import ArrayRows, read_all
from pipeline.index.search import (auto_factory, auto_nprobe, check_k, load_index, neighbours_of, recall_at_k,
                                   save_index, set_nprobe)
from pipeline.index.stream import build_streamed_index, exact_neighbours
from pipeline.io import atomic_path, write_json
from pipeline.params import load_params
from pipeline.provenance import library_versions, open_checked_features
from pipeline.scratch import ChunkStore
from stages.common import prepared_list

log = logging.getLogger(__name__)


RECALL_SAMPLE = 1000  # training images whose exact neighbours are computed to report recall@K


def mine(name: str, params_path: Path) -> None:
    """Write data/neighbours/<name>.h5 (rows, indices, similarities) and metrics/mine/<name>.json.

    Memory: the training rows' features, the index and one query batch.
    """
    p = load_params(params_path).mine
    image_list, list_sha = prepared_list()
    source = layout.whitened_features(name)
    train = image_list.train_rows()
    check_k(p.k, len(train))
    with open_checked_features(source, list_sha, name, rows=train) as reader:
        whitened_attrs = reader.attrs
        feats = read_all(reader)
    factory = auto_factory(len(train), feats.shape[1], faiss.get_num_gpus() > 0) if p.index == "auto" else p.index
    shortlist = 0 if factory == "Flat" else p.shortlist
    nprobe = auto_nprobe(factory) if p.nprobe == "auto" else p.nprobe
    attrs = {"teacher": name, "list_sha256": list_sha, "index": factory, "k": p.k, "shortlist": shortlist,
             "nprobe": nprobe,
             "weights_sha256": whitened_attrs["weights_sha256"], "versions": library_versions()}
    store = ChunkStore(layout.scratch("mine", name), {**attrs, "batch_size": p.batch_size})
    rows = ArrayRows(feats)
    index_file = store.file("index.faiss")
    if index_file.is_file():
        index = load_index(index_file)
    else:
        index = build_streamed_index(rows, factory)
        with atomic_path(index_file) as tmp:
            save_index(index, tmp)
    set_nprobe(index, nprobe)
    starts = range(0, len(train), p.batch_size)
    pending = [b for b, _ in enumerate(starts) if b not in store.done()]
    log.info("mine %s: %d of %d query batches already done", name, len(starts) - len(pending), len(starts))
    for b in tqdm(pending, desc=f"mine {name}", unit="batch"):
        sims, ids = neighbours_of(index, feats, starts[b], starts[b] + p.batch_size, p.k, shortlist)
        store.save(b, {"similarities": sims, "ids": ids})
    # Assembled chunk by chunk into the output arrays (no list of parts beside their concatenation).
    sims = np.empty((len(train), p.k), dtype=np.float32)
    indices = np.empty((len(train), p.k), dtype=np.int64)
    for b, start in enumerate(starts):
        part = store.load(b, ["similarities", "ids"])
        sims[start:start + len(part["ids"])] = part["similarities"]
        indices[start:start + len(part["ids"])] = train[part["ids"]]
    sample = np.unique(np.linspace(0, len(train) - 1, min(RECALL_SAMPLE, len(train))).astype(np.int64))
    recall = recall_at_k(indices[sample], train[exact_neighbours(rows, sample, p.k)])
    del rows, feats, index
    write_arrays(layout.neighbours(name), {"rows": train, "indices": indices, "similarities": sims}, attrs)
    log.info("mined %d neighbours of %d images with %s: recall@%d %.3f (on %d images)", p.k, len(train), factory,
             p.k, recall, len(sample))
    write_json(layout.metrics("mine", name), {"index": factory, "k": p.k, "shortlist": shortlist, "nprobe": nprobe,
                                              "n_train": int(len(train)), "recall_at_k": recall,
                                              "recall_sample": int(len(sample))})
    store.clear()
