"""Neighbour mining on 100k × 512-d whitened-like features: recall@K against exact search, memory, queries/s.

Each index configuration runs in a fresh process (benchmarks/mine_one.py: the functions the `mine` stage calls), so its
peak memory is its own: the index plus one query batch, the features streamed from the HDF5 cache.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import typer

from benchmarks.common import write_result

# (index, shortlist re-ranked exactly); PQ64x8 codes are 1/32 of the exact index, IVF adds its centroids
CONFIGS = [("PQ64x8", 1024), ("IVF1024,PQ64", 1024)]


def clustered_features(n: int, dim: int, clusters: int, seed: int = 0) -> np.ndarray:
    """l2-normalised points around random centres: retrieval-like structure with many near neighbours."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    x = centres[rng.integers(clusters, size=n)] + 0.9 * rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main(rows: int = 100_000, dim: int = 512, k: int = 64, queries: int = 8192, batch: int = 1024,
         nprobe: int = 64, recall_sample: int = 1000) -> None:
    """Write benchmarks/results/mining.json."""
    from pipeline.data.h5 import feature_writer
    exact_mb = rows * dim * 4 / 2**20
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "whitened.h5"
        with feature_writer(path, [str(i) for i in range(rows)], {"teacher": "bench"}, chunk_rows=4096) as writer:
            writer.write(np.arange(rows), clustered_features(rows, dim, clusters=rows // 50))
        for factory, shortlist in CONFIGS:
            out = subprocess.run([sys.executable, "-m", "benchmarks.mine_one", str(path), factory,
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
    typer.run(main)
