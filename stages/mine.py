"""Stage `mine`: FAISS index over a teacher's whitened training features, top-K neighbours of each.

Recall@K against exact search is measured on an even sample of up to 1,000 training images.

The trained index and each finished query batch are kept in a scratch folder, so a killed run
resumes where it stopped.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline import layout
from pipeline.data.h5 import read_arrays, write_arrays
from pipeline.index.search import check_k, load_index, recall_at_k, save_index, set_nprobe
from pipeline.index.stream import RowReader, build_streamed_index, exact_neighbours, streamed_neighbours
from pipeline.io import atomic_path, write_json
from pipeline.params import load_params
from pipeline.provenance import library_versions, require_match
from pipeline.scratch import ChunkStore
from stages.common import prepared_list

log = logging.getLogger(__name__)


RECALL_SAMPLE = 1000  # training images whose exact neighbours are computed to report recall@K


def mine(name: str, params_path: Path) -> None:
    """Write data/neighbours/<name>.h5 (rows, indices, similarities) and metrics/mine/<name>.json.

    The whitened features are streamed from their file: memory holds the index and one query batch.
    """
    p = load_params(params_path).mine
    image_list, list_sha = prepared_list()
    source = layout.whitened_features(name)
    _, whitened_attrs = read_arrays(source, [])
    require_match(source, whitened_attrs, "list_sha256", list_sha)
    require_match(source, whitened_attrs, "teacher", name)
    train = image_list.train_rows()
    check_k(p.k, len(train))
    attrs = {"teacher": name, "list_sha256": list_sha, "index": p.index, "k": p.k, "shortlist": p.shortlist,
             "nprobe": p.nprobe,
             "weights_sha256": whitened_attrs["weights_sha256"], "versions": library_versions()}
    store = ChunkStore(layout.scratch("mine", name), {**attrs, "batch_size": p.batch_size})
    reader = RowReader(source, train)
    index_file = store.file("index.faiss")
    if index_file.is_file():
        index = load_index(index_file)
    else:
        index = build_streamed_index(reader, p.index)
        with atomic_path(index_file) as tmp:
            save_index(index, tmp)
    set_nprobe(index, p.nprobe)
    starts = range(0, len(train), p.batch_size)
    pending = [b for b, _ in enumerate(starts) if b not in store.done()]
    log.info("mine %s: %d of %d query batches already done", name, len(starts) - len(pending), len(starts))
    for b in tqdm(pending, desc=f"mine {name}", unit="batch"):
        sims, ids = streamed_neighbours(index, reader, starts[b], starts[b] + p.batch_size, p.k, p.shortlist)
        store.save(b, {"similarities": sims, "ids": ids})
    parts = [store.load(b, ["similarities", "ids"]) for b in range(len(starts))]
    sims, ids = (np.concatenate([part[key] for part in parts]) for key in ("similarities", "ids"))
    sample = np.unique(np.linspace(0, len(train) - 1, min(RECALL_SAMPLE, len(train))).astype(np.int64))
    recall = recall_at_k(ids[sample], exact_neighbours(reader, sample, p.k))
    reader.close()
    write_arrays(layout.neighbours(name), {"rows": train, "indices": train[ids], "similarities": sims}, attrs)
    log.info("mined %d neighbours of %d images with %s: recall@%d %.3f (on %d images)", p.k, len(train), p.index,
             p.k, recall, len(sample))
    write_json(layout.metrics("mine", name), {"index": p.index, "k": p.k, "shortlist": p.shortlist,
                                              "n_train": int(len(train)), "recall_at_k": recall,
                                              "recall_sample": int(len(sample))})
    store.clear()
