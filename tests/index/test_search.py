import numpy as np
import pytest

from pipeline.data.rows import ArrayRows
from pipeline.index.search import dot_rounding_bound, drop_self, neighbours_of, recall_at_k, recall_with_ties
from pipeline.index.stream import build_streamed_index, exact_neighbours, exact_top_k


def mine_neighbours(x, factory, k, shortlist=0):
    """The mine stage's path on in-memory rows: (sims, ids) via `factory`, and the exact ids."""
    rows = ArrayRows(x)
    sims, ids = neighbours_of(build_streamed_index(rows, factory), x, 0, len(x), k, shortlist)
    return sims, ids, exact_neighbours(rows, np.arange(len(x)), k)


def clustered(rng, n, dim, n_clusters=20):
    centres = rng.standard_normal((n_clusters, dim))
    x = centres[rng.integers(0, n_clusters, n)] + 0.3 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force_neighbours(x, k):
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def test_pq_neighbours_recall_against_brute_force(rng):
    x = clustered(rng, 2000, 32)
    ref = brute_force_neighbours(x, 20)
    sims, ids, exact_ids = mine_neighbours(x, "PQ16x4", k=20)
    assert ids.shape == (2000, 20) and not (ids == np.arange(2000)[:, None]).any()
    assert recall_at_k(exact_ids, ref) > 0.99
    pq_recall = recall_at_k(ids, ref)
    assert 0.2 < pq_recall < 0.9  # 4-bit codes confuse close neighbours ...
    _, reranked, _ = mine_neighbours(x, "PQ16x4", k=20, shortlist=200)
    assert recall_at_k(reranked, ref) > 0.95  # ... an exactly re-ranked shortlist recovers them
    assert not (reranked == np.arange(2000)[:, None]).any()
    flat_sims, flat_ids, _ = mine_neighbours(x, "Flat", k=20)
    assert recall_at_k(flat_ids, ref) > 0.99


def test_drop_self_removes_own_id_or_the_last_result():
    ids = np.array([[0, 5, 6], [7, 8, 9]])
    sims = np.array([[1.0, 0.9, 0.8], [0.7, 0.6, 0.5]])
    kept_sims, kept_ids = drop_self(sims, ids, np.array([0, 1]), k=2)
    assert kept_ids.tolist() == [[5, 6], [7, 8]]
    assert kept_sims.tolist() == [[0.9, 0.8], [0.7, 0.6]]


def test_recall_at_k_counts_set_overlap():
    assert recall_at_k(np.array([[1, 2], [3, 4]]), np.array([[2, 1], [3, 5]])) == 0.75


def test_recall_with_ties_counts_neighbours_as_similar_as_the_kth_up_to_the_tolerance():
    exact = np.array([[0.9, 0.8, 0.7], [0.5, 0.4, 0.3]])
    found = np.array([[0.9, 0.7 - 1e-7, 0.6], [0.5, 0.4, 0.3]])
    # row 0: 0.9 and the near-tie at 0.7 - 1e-7 count within 1e-6, 0.6 does not: 2/3; row 1: 3/3
    assert recall_with_ties(found, exact, np.array([1e-6, 1e-6])) == (2 / 3 + 1) / 2
    assert recall_with_ties(found, exact, np.array([0.0, 0.0])) == (1 / 3 + 1) / 2


def test_dot_rounding_bound_is_d_units_per_side_scaled_by_the_norms():
    q = np.array([[3.0, 4.0]], dtype=np.float32)  # |q| = 5, max |x| = 2
    db = np.array([[0.0, 2.0], [1.0, 0.0]], dtype=np.float32)
    assert dot_rounding_bound(q, db)[0] == 2 * 2 * 2.0**-24 * 5 * 2


def test_exact_search_has_recall_one_with_ties_whatever_order_the_kernels_give_them(rng):
    x = clustered(rng, 600, 16)
    x = np.concatenate([x, x[:300]])  # every duplicated row ties with its copy for every query
    sims, ids = neighbours_of(build_streamed_index(ArrayRows(x), "Flat"), x, 0, len(x), 10)
    exact_sims, exact_ids = exact_top_k(ArrayRows(x), np.arange(len(x)), 10)
    tolerance = dot_rounding_bound(x, x)
    found = np.einsum("nd,nkd->nk", x, x[ids])
    assert recall_with_ties(found, exact_sims, tolerance) == 1.0
    wrong = ids.copy()
    wrong[:, -1] = np.argmin(x @ x.T, axis=1)  # the least similar row instead of the 10th
    found_wrong = np.einsum("nd,nkd->nk", x, x[wrong])
    assert recall_with_ties(found_wrong, exact_sims, tolerance) == pytest.approx(0.9)


def test_ivf_lists_get_forty_training_rows_each_when_the_index_moves_to_gpus(monkeypatch):
    """On GPUs the index is a GPU index or replicas, whose IVF part FAISS cannot find: the list count must
    be read before the move. Replicas over the CPU index stand in for the GPUs here."""
    import faiss

    import pipeline.index.stream as stream

    kept = []

    def to_replicas(index):
        replicas = faiss.IndexReplicas(index.d)
        replicas.addIndex(index)
        kept.append(index)  # the replicas do not own it
        return replicas

    monkeypatch.setattr(stream, "to_gpu_if_available", to_replicas)
    sampled = []
    rows = ArrayRows(np.random.default_rng(0).standard_normal((6000, 4)).astype(np.float32))
    original = rows.sample
    monkeypatch.setattr(rows, "sample", lambda n: sampled.append(n) or original(n))
    with pytest.raises(RuntimeError):
        faiss.extract_index_ivf(to_replicas(faiss.index_factory(4, "IVF128,Flat")))  # why it is read before
    build_streamed_index(rows, "IVF128,Flat", train_size=1000)
    assert sampled == [40 * 128]


def test_more_results_than_faiss_gpus_return_is_one_clear_line(monkeypatch):
    import faiss

    from pipeline.errors import RdistillError
    from pipeline.index.search import GPU_MAX_K, check_gpu_k

    cpu = faiss.IndexFlatIP(4)
    replicas = faiss.IndexReplicas(4)  # how the index spreads over GPUs
    replicas.addIndex(cpu)
    check_gpu_k(replicas, 5000, "mine.k", "advice")  # without GPUs FAISS searches on the CPU: any k
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2)
    check_gpu_k(cpu, 5000, "mine.k", "advice")  # an index FAISS kept on the CPU: any k
    check_gpu_k(replicas, GPU_MAX_K, "mine.k", "advice")
    with pytest.raises(RdistillError, match=r"^mine.k: 2049 results per query, but FAISS on GPUs returns at most 2048; "
                                            r"set mine.index: exact"):
        check_gpu_k(replicas, GPU_MAX_K + 1, "mine.k", "set mine.index: exact")
