"""One mining configuration in its own process, for benchmarks/mining.py: prints its figures as JSON."""
from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np
import typer

from benchmarks.common import current_rss_mb, peak_rss_mb, reset_peak_rss


def main(path: Path, factory: str, shortlist: int, k: int, queries: int, batch: int, nprobe: int,
         recall_sample: int) -> None:
    """Mine `queries` rows with one index configuration, the features streamed from `path`."""
    import faiss

    from pipeline.index.search import recall_at_k, set_nprobe
    from pipeline.data.rows import ArrayRows, FeatureRows, read_all
    from pipeline.index.search import neighbours_of
    from pipeline.index.stream import build_streamed_index, exact_neighbours
    with h5py.File(path) as h5:
        rows = len(h5["features"])
    reset_peak_rss()
    baseline = current_rss_mb()  # libraries loaded, no features read yet
    with FeatureRows(path, np.arange(rows)) as file_rows:
        feats = read_all(file_rows)  # the in-RAM copy the mine stage re-ranks from
        reader = ArrayRows(feats)
        start = time.perf_counter()
        index = set_nprobe(build_streamed_index(reader, factory), nprobe)
        build = time.perf_counter() - start
        index_mb = faiss.serialize_index(index).nbytes / 2**20
        peak_build = peak_rss_mb() - baseline  # the training sample and the filled index
        reset_peak_rss()
        before_search = current_rss_mb()
        start = time.perf_counter()
        ids = np.concatenate([neighbours_of(index, feats, s, min(s + batch, queries), k, shortlist)[1]
                              for s in range(0, queries, batch)])
        search = time.perf_counter() - start
        peak_search = peak_rss_mb() - before_search  # one query batch's working set (results kept aside)
        sample = np.linspace(0, queries - 1, recall_sample).astype(np.int64)
        recall = recall_at_k(ids[sample], exact_neighbours(reader, sample, k))
    print(json.dumps({"factory": factory, "shortlist": shortlist, "nprobe": nprobe, "index_mb": index_mb,
                      "build_s": build, "queries_per_s": queries / search, f"recall_at_{k}": recall,
                      "rss_before_mb": baseline, "peak_build_above_start_mb": peak_build,
                      "peak_search_above_index_mb": peak_search,
                      "peak_above_start_mb": max(peak_build, before_search - baseline + peak_search)}))


if __name__ == "__main__":
    typer.run(main)
