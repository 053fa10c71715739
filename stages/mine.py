"""Stage `mine`: FAISS index over a teacher's whitened training features, top-K neighbours of each.

The trained index and each finished query batch are kept in a scratch folder, so a killed run
resumes where it stopped.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline import layout
from pipeline.data.h5 import write_arrays
from pipeline.index.search import build_index, check_k, load_index, neighbours_of, recall_at_k, save_index
from pipeline.io import atomic_path, write_json
from pipeline.params import load_params
from pipeline.provenance import library_versions
from pipeline.scratch import ChunkStore
from stages.common import prepared_list, read_checked_features

log = logging.getLogger(__name__)


def mine(name: str, params_path: Path) -> None:
    """Write data/neighbours/<name>.h5 (rows, indices, similarities) and metrics/mine/<name>.json."""
    p = load_params(params_path).mine
    image_list, list_sha = prepared_list()
    whitened = read_checked_features(layout.whitened_features(name), list_sha, name)
    train = image_list.train_rows()
    check_k(p.k, len(train))
    feats = np.ascontiguousarray(whitened.features[train], dtype=np.float32)
    attrs = {"teacher": name, "list_sha256": list_sha, "index": p.index, "k": p.k, "shortlist": p.shortlist,
             "weights_sha256": whitened.attrs["weights_sha256"], "versions": library_versions()}
    store = ChunkStore(layout.scratch("mine", name), {**attrs, "batch_size": p.batch_size})
    index_file = store.file("index.faiss")
    if index_file.is_file():
        index = load_index(index_file)
    else:
        index = build_index(feats, p.index)
        with atomic_path(index_file) as tmp:
            save_index(index, tmp)
    exact = build_index(feats, "Flat")
    starts = range(0, len(feats), p.batch_size)
    pending = [b for b, _ in enumerate(starts) if b not in store.done()]
    log.info("mine %s: %d of %d query batches already done", name, len(starts) - len(pending), len(starts))
    for b in tqdm(pending, desc=f"mine {name}", unit="batch"):
        stop = min(starts[b] + p.batch_size, len(feats))
        sims, ids = neighbours_of(index, feats, starts[b], stop, p.k, p.shortlist)
        _, exact_ids = neighbours_of(exact, feats, starts[b], stop, p.k)
        store.save(b, {"similarities": sims, "ids": ids, "exact_ids": exact_ids})
    parts = [store.load(b, ["similarities", "ids", "exact_ids"]) for b in range(len(starts))]
    sims, ids, exact_ids = (np.concatenate([part[key] for part in parts]) for key in ("similarities", "ids", "exact_ids"))
    recall = recall_at_k(ids, exact_ids)
    write_arrays(layout.neighbours(name), {"rows": train, "indices": train[ids], "similarities": sims}, attrs)
    log.info("mined %d neighbours of %d images with %s: recall@%d %.3f", p.k, len(train), p.index, p.k, recall)
    write_json(layout.metrics("mine", name), {"index": p.index, "k": p.k, "shortlist": p.shortlist,
                                              "n_train": int(len(train)), "recall_at_k": recall})
    store.clear()
