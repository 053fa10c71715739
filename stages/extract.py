"""Stage `extract`: multi-scale GeM features of every listed image by one teacher -> HDF5 (or, for a
teacher declared with `features:`, those features imported in the prepared list's order).

With extract.views = V > 1, the training images' augmented views 1..V−1 are described too
(items view · N + row, after the N plain images). Under torchrun each rank extracts its share of
the chunks and rank 0 assembles them into the one file a single process would write. Progress is committed chunk by chunk to a scratch folder; a killed run resumes from the last
complete chunk, and the published file is identical to an uninterrupted run's.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pipeline import layout
from pipeline.data.h5 import feature_writer
from pipeline.data.views import item_loader
from pipeline.distributed import barrier, init_from_env, is_main, main_first, rank_and_world
from pipeline.errors import RdistillError
from pipeline.features.chunks import (ChunkCollector, chunk_count, chunk_length, chunks_of_rank, extraction_items,
                                      pending_positions, write_chunk)
from pipeline.features.extract import describe
from pipeline.features.imported import import_features
from pipeline.io import sha256_file
from pipeline.models.weights import load_network
from pipeline.params import load_params
from pipeline.provenance import environment
from pipeline.runtime import describe_device, device, seed_everything
from pipeline.scratch import ChunkStore
from stages.common import declared, prepared_list

log = logging.getLogger(__name__)


def extract(name: str, params_path: Path) -> None:
    """Write data/features/<name>.h5 with features, ids and provenance."""
    params = load_params(params_path)
    spec, p = declared(params.teachers, "teachers", name, params_path), params.extract
    seed_everything(params.seed)
    image_list, list_sha = prepared_list(params)
    if spec.features:
        log.info("extract %s: importing %s (computed elsewhere) in the prepared list's order", name, spec.features)
        import_features(spec.features, spec.ids, image_list.ids, layout.raw_features(name),
                        {"teacher": name, "arch": spec.arch, "list_sha256": list_sha, "views": 1, "seed": params.seed})
        return
    weights = layout.teacher_weights(name)
    net = load_network(weights, spec.arch, spec.dim, spec.pool)
    attrs = {"teacher": name, "arch": spec.arch, "weights_sha256": sha256_file(weights), "scales": p.scales,
             "image_size": spec.image_size, "list_sha256": list_sha, "views": p.views, "seed": params.seed,
             "environment": environment(describe_device(device()))}
    n_rows = len(image_list)
    view_rows = image_list.train_rows() if p.views > 1 else np.zeros(0, dtype=np.int64)
    items = extraction_items(n_rows, view_rows, p.views)
    n_items = len(items)
    n_chunks = chunk_count(n_items, p.chunk_size)
    init_from_env(params.runtime.timeout_minutes)
    rank, world = rank_and_world()
    store = main_first(lambda: ChunkStore(layout.scratch("extract", name), {
        **attrs, "dim": spec.dim, "chunk_size": p.chunk_size, "batch_size": p.batch_size}))
    done = store.done()
    # Under torchrun, rank r extracts chunks r, r + world, …; rank 0 then assembles the file.
    pending = chunks_of_rank(n_chunks, done, rank, world)
    positions = pending_positions(pending, n_items, p.chunk_size)
    log.info("extract %s: %d of %d items (images and views) already extracted, extracting %d%s",
             name, sum(chunk_length(c, n_items, p.chunk_size) for c in done), n_items, len(positions),
             f" (rank {rank} of {world})" if world > 1 else "")
    if len(positions):
        # chunk_size is a multiple of batch_size, so batches never straddle chunks and a resumed
        # run sees exactly the batches an uninterrupted run would.
        loader = item_loader(image_list, items[positions], spec.image_size, params.seed, p.batch_size, params.runtime.workers)
        collector = ChunkCollector(items, p.chunk_size)
        for batch_items, feats in describe(net, loader, p.scales, len(positions), device(), desc=f"extract {name}"):
            bad = np.flatnonzero(~np.isfinite(feats).all(axis=1) | ~feats.any(axis=1))
            if bad.size:
                row = batch_items[bad[0]] % n_rows
                raise RdistillError(f"{image_list.paths[row]}: teacher {name} gave a NaN, inf or all-zero feature (row {row})")
            for chunk, arrays in collector.add(batch_items, feats):
                store.save(chunk, arrays)
    barrier()
    if not is_main():
        return
    with feature_writer(layout.raw_features(name), image_list.ids, attrs, p.chunk_size, view_rows, p.views) as writer:
        for chunk in range(n_chunks):
            arrays = store.load(chunk, ["rows", "features"])
            write_chunk(writer, items, n_rows, arrays["rows"], arrays["features"])
    store.clear()
