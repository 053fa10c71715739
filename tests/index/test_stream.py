import numpy as np
import pytest

from pipeline.data.h5 import feature_writer
from pipeline.data.rows import ArrayRows, FeatureRows
from pipeline.index.search import auto_factory, neighbours_of, new_index, recall_at_k, rerank_exact
from pipeline.index.stream import build_streamed_index, exact_neighbours


def feature_file(tmp_path, rng, n=300, dim=16):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    path = tmp_path / "w.h5"
    with feature_writer(path, [str(i) for i in range(n)], {}, chunk_rows=64) as writer:
        writer.write(np.arange(n), x)
    return path, x


def test_reader_reads_only_the_chosen_rows_in_blocks(tmp_path, rng):
    path, x = feature_file(tmp_path, rng)
    rows = np.arange(3, 300, 3)
    reader = FeatureRows(path, rows, block=17)
    assert np.array_equal(reader.read(5, 9), x[rows[5:9]])
    starts, blocks = zip(*reader.blocks())
    assert starts[:3] == (0, 17, 34) and np.array_equal(np.concatenate(blocks), x[rows])
    assert np.array_equal(reader.sample(10), x[rows[[0, 10, 21, 32, 43, 54, 65, 76, 87, 98]]])  # linspace(0, 98, 10)
    assert np.array_equal(reader.sample(1000), x[rows])  # never more than every row once


def test_rerank_in_steps_equals_scores_by_hand(rng):
    x = rng.standard_normal((300, 16)).astype(np.float32)
    ids = rng.integers(0, 300, size=(20, 40))
    sims, order = rerank_exact(x[:20], x, ids, pairs_per_step=7)
    by_hand = np.array([[x[i] @ x[j] for j in row] for i, row in enumerate(ids)])
    expected = np.sort(by_hand, axis=1)[:, ::-1]
    assert np.allclose(sims, expected, atol=1e-6)
    assert np.allclose(np.take_along_axis(by_hand, np.argsort(-by_hand, axis=1, kind="stable"), 1), sims, atol=1e-6)


def test_streamed_mining_matches_in_memory_mining_and_exact_search(tmp_path, rng):
    path, x = feature_file(tmp_path, rng)
    reader = FeatureRows(path, np.arange(300), block=64)
    streamed = build_streamed_index(reader, "PQ4x4")
    memory = new_index(x.shape[1], "PQ4x4")  # the same index trained and filled from the array at once
    memory.train(x)
    memory.add(x)
    got = neighbours_of(streamed, x, 0, 300, k=10, shortlist=100)
    want = neighbours_of(memory, x, 0, 300, k=10, shortlist=100)
    exact = exact_neighbours(reader, np.arange(300), 10)
    brute = np.argsort(-(x @ x.T - 3 * np.eye(300)), axis=1, kind="stable")[:, :10]
    assert np.array_equal(exact, brute)
    assert np.array_equal(got[1], want[1]) and np.allclose(got[0], want[0], atol=1e-6)  # same training rows, same index
    assert recall_at_k(got[1], exact) > 0.95
    assert not np.any(got[1] == np.arange(300)[:, None])  # never its own neighbour


def test_auto_ivf_pq_fast_scan_mines_with_high_recall(rng):
    import faiss
    from pipeline.index.search import set_nprobe
    centres = rng.standard_normal((150, 32)).astype(np.float32)
    x = centres[np.arange(3000) // 20] + 0.3 * rng.standard_normal((3000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = set_nprobe(build_streamed_index(ArrayRows(x), "IVF16,PQ4x4fs"), 4)
    assert faiss.extract_index_ivf(index).nprobe == 4
    _, ids = neighbours_of(index, x, 0, 300, k=10, shortlist=100)
    assert recall_at_k(ids, exact_neighbours(ArrayRows(x), np.arange(300), 10)) > 0.9
    assert not np.any(ids == np.arange(300)[:, None])


def test_ivf_pq_path_mines_through_the_same_streamed_functions(tmp_path, rng):
    from pipeline.index.search import set_nprobe
    import faiss
    path, x = feature_file(tmp_path, rng, n=2000, dim=16)
    reader = ArrayRows(x, block=256)
    index = set_nprobe(build_streamed_index(reader, "IVF16,PQ4x4"), 16)
    assert faiss.extract_index_ivf(index).nprobe == 16  # every list: exact up to the PQ codes
    _, ids = neighbours_of(index, x, 0, 200, k=10, shortlist=200)
    assert recall_at_k(ids, exact_neighbours(reader, np.arange(200), 10)) > 0.95


def test_missing_candidates_never_outrank_found_ones(rng):
    x = rng.standard_normal((10, 4)).astype(np.float32)
    ids = np.array([[3, -1, 5, -1]])
    sims, order = rerank_exact(x[:1], x, ids)
    assert order[0, :2].tolist() in ([3, 5], [5, 3]) and np.isinf(sims[0, 2:]).all()


def test_auto_index_is_exact_for_small_sets_and_ivf_pq_for_large_ones():
    assert auto_factory(1000, 32) == "Flat"
    assert auto_factory(1_600_000, 512) == "IVF4096,PQ64x4fs"
    assert auto_factory(100_000, 2048) == "IVF256,PQ256x4fs"
    assert auto_factory(60_000, 20) == "IVF128,PQ2x4fs"
    assert auto_factory(50_001, 512) == "IVF128,PQ64x4fs"
    # FAISS's fast-scan codes have no GPU version: on GPUs the lists hold the vectors themselves
    assert auto_factory(1_600_000, 512, gpu=True) == "IVF4096,Flat"
    assert auto_factory(1000, 32, gpu=True) == "Flat"
    # a GPU that FAISS cannot use (no faiss-gpu): torch's exact search there, at any size
    assert auto_factory(1_600_000, 512, gpu=False, torch_gpu=True) == "exact"
    assert auto_factory(1_600_000, 512, gpu=True, torch_gpu=True) == "IVF4096,Flat"


def test_nprobe_reaches_ivf_inside_wrappers_and_leaves_other_indexes_alone(rng):
    import faiss
    from pipeline.index.search import new_index, set_nprobe
    x = rng.standard_normal((2000, 32)).astype(np.float32)
    for factory in ("IVF16,Flat", "PCA16,IVF16,PQ4x4fs", "IDMap,Flat", "PQ4x4"):
        index = new_index(32, factory)
        index.train(x)
        set_nprobe(index, 7)
        try:
            assert faiss.extract_index_ivf(index).nprobe == 7, factory
        except RuntimeError:
            assert "IVF" not in factory


def test_too_few_candidates_is_an_error_naming_the_row_not_the_last_row(rng):
    from pipeline.errors import RdistillError
    from pipeline.index.search import set_nprobe
    x = rng.standard_normal((400, 8)).astype(np.float32)
    index = set_nprobe(build_streamed_index(ArrayRows(x), "IVF64,Flat", train_size=400), 1)
    # one list of ~6 rows visited: FAISS pads the 20 asked for with id −1
    with pytest.raises(RdistillError, match="fewer than 20 neighbours of training row .*raise mine.nprobe"):
        neighbours_of(index, x, 0, 50, k=20)
    with pytest.raises(RdistillError, match="fewer than 20 neighbours"):
        neighbours_of(index, x, 0, 50, k=20, shortlist=40)


def test_auto_nprobe_visits_a_share_of_the_lists_within_bounds():
    from pipeline.index.search import auto_nprobe
    assert auto_nprobe("IVF512,PQ64x4fs") == 64 and auto_nprobe("PCA64,IVF1024,Flat") == 128
    assert auto_nprobe("IVF4096,PQ64x4fs") == 128  # the refinement, not more lists, keeps recall at 1.6M
    assert auto_nprobe("IVF64,Flat") == 16 and auto_nprobe("Flat") == 16
