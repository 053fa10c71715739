"""Neighbour mining on 100k × 512-d whitened-like features: recall@K against exact search, memory, queries/s.

Each index configuration runs in a fresh process (the same functions the `mine` stage calls), so its
peak memory is its own: the index plus one query batch, the features streamed from the HDF5 cache.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import typer

from benchmarks.common import peak_rss_mb, write_result

app = typer.Typer(add_completion=False)
CONFIGS = [("PQ64x8", 256), ("IVF1024,PQ64", 256), ("PQ128x8", 0)]


def clustered_features(n: int, dim: int, clusters: int, seed: int = 0) -> np.ndarray:
    """l2-normalised points around random centres: retrieval-like structure with many near neighbours."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    x = centres[rng.integers(clusters, size=n)] + 0.9 * rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@app.command("run-one", hidden=True)
def run_one(path: Path, factory: str, shortlist: int, k: int, queries: int, batch: int, nprobe: int,
            recall_sample: int) -> None:
    """Mine `queries` rows with one index configuration; print figures as JSON."""
    import faiss

    from pipeline.index.search import recall_at_k, set_nprobe
    from pipeline.index.stream import RowReader, build_streamed_index, exact_neighbours, streamed_neighbours
    baseline = peak_rss_mb()
    with RowReader(path, np.arange(_rows(path))) as reader:
        start = time.perf_counter()
        index = set_nprobe(build_streamed_index(reader, factory), nprobe)
        build = time.perf_counter() - start
        index_mb = faiss.serialize_index(index).nbytes / 2**20
        start = time.perf_counter()
        ids = np.concatenate([streamed_neighbours(index, reader, s, min(s + batch, queries), k, shortlist)[1]
                              for s in range(0, queries, batch)])
        search = time.perf_counter() - start
        sample = np.linspace(0, queries - 1, recall_sample).astype(np.int64)
        recall = recall_at_k(ids[sample], exact_neighbours(reader, sample, k))
    print(json.dumps({"factory": factory, "shortlist": shortlist, "nprobe": nprobe, "index_mb": index_mb,
                      "build_s": build, "queries_per_s": queries / search, f"recall_at_{k}": recall,
                      "rss_after_imports_mb": baseline, "peak_rss_mb": peak_rss_mb(),
                      "peak_above_imports_mb": peak_rss_mb() - baseline}))


def _rows(path: Path) -> int:
    import h5py
    with h5py.File(path) as h5:
        return len(h5["features"])


@app.command()
def main(rows: int = 100_000, dim: int = 512, k: int = 64, queries: int = 8192, batch: int = 4096,
         nprobe: int = 32, recall_sample: int = 1000) -> None:
    """Write benchmarks/results/mining.json."""
    from pipeline.data.h5 import feature_writer
    exact_mb = rows * dim * 4 / 2**20
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "whitened.h5"
        with feature_writer(path, [str(i) for i in range(rows)], {"teacher": "bench"}, chunk_rows=4096) as writer:
            writer.write(np.arange(rows), clustered_features(rows, dim, clusters=rows // 50))
        for factory, shortlist in CONFIGS:
            out = subprocess.run([sys.executable, "-m", "benchmarks.mining", "run-one", str(path), factory,
                                  str(shortlist), str(k), str(queries), str(batch), str(nprobe), str(recall_sample)],
                                 capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["memory_vs_exact"] = result["index_mb"] / exact_mb
            results.append(result)
    targets = {f"{r['factory']} shortlist {r['shortlist']}: recall@{k} >= 0.95 at <= 1/16 memory":
               r[f"recall_at_{k}"] >= 0.95 and r["memory_vs_exact"] <= 1 / 16 for r in results}
    write_result("mining", {"rows": rows, "dim": dim, "k": k, "queries_timed": queries, "query_batch": batch,
                            "exact_index_mb": exact_mb, "data": "clustered Gaussian, l2-normalised, 50 per cluster"},
                 {"configs": results}, targets)


if __name__ == "__main__":
    app()
