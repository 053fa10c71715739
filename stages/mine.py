"""Stage `mine`: FAISS index over a teacher's whitened training features, top-K neighbours of each."""
from __future__ import annotations

import logging
from pathlib import Path

from pipeline import layout
from pipeline.data.h5 import write_arrays
from pipeline.index.search import mine_neighbours, recall_at_k
from pipeline.io import write_json
from pipeline.params import load_params
from pipeline.provenance import library_versions
from stages.common import prepared_list, read_checked_features

log = logging.getLogger(__name__)


def mine(name: str, params_path: Path) -> None:
    """Write data/neighbours/<name>.h5 (rows, indices, similarities) and metrics/mine/<name>.json."""
    p = load_params(params_path).mine
    image_list, list_sha = prepared_list()
    whitened = read_checked_features(layout.whitened_features(name), list_sha, name)
    train = image_list.train_rows()
    sims, ids, exact_ids = mine_neighbours(whitened.features[train], p.index, p.k, p.shortlist, p.batch_size)
    recall = recall_at_k(ids, exact_ids)
    attrs = {"teacher": name, "list_sha256": list_sha, "index": p.index, "k": p.k, "shortlist": p.shortlist,
             "weights_sha256": whitened.attrs["weights_sha256"], "versions": library_versions()}
    write_arrays(layout.neighbours(name), {"rows": train, "indices": train[ids], "similarities": sims}, attrs)
    log.info("mined %d neighbours of %d images with %s: recall@%d %.3f", p.k, len(train), p.index, p.k, recall)
    write_json(layout.metrics("mine", name), {"index": p.index, "k": p.k, "shortlist": p.shortlist, "n_train": int(len(train)),
                                              "recall_at_k": recall})
