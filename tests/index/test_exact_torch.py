"""Exact mining with torch (the GPU path without FAISS GPU), run here on the CPU against FAISS's exact search."""
import faiss
import numpy as np
import torch

from pipeline.index.exact_torch import ExactSearch


def unit_rows(n, d, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def faiss_exact(x, start, stop, k):
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    sims, ids = index.search(x[start:stop], k + 1)
    keep = ids != np.arange(start, stop)[:, None]
    keep[keep.sum(1) > k, -1] = False
    return sims[keep].reshape(-1, k), ids[keep].reshape(-1, k)


def test_blocked_torch_top_k_is_faiss_exact_search_without_the_row_itself():
    x = unit_rows(500, 16)
    search = ExactSearch(x, torch.device("cpu"), block_rows=37)  # blocks that do not divide N, smaller than k
    for start, stop in [(0, 100), (100, 333), (490, 500)]:
        sims, ids = search.search(start, stop, 50)
        want_sims, want_ids = faiss_exact(x, start, stop, 50)
        assert np.array_equal(ids, want_ids)
        assert np.allclose(sims, want_sims, atol=1e-5)
        assert not (ids == np.arange(start, stop)[:, None]).any()
        assert (np.diff(sims, axis=1) <= 0).all()


def test_duplicated_rows_are_each_others_nearest():
    x = unit_rows(40, 8)
    x = np.concatenate([x, x])  # row i and row i + 40 are the same
    sims, ids = ExactSearch(x, torch.device("cpu"), block_rows=16).search(0, 80, 3)
    assert np.array_equal(ids[:, 0], np.r_[np.arange(40, 80), np.arange(40)])
    assert np.allclose(sims[:, 0], 1.0, atol=1e-6)
