import numpy as np
from sklearn.metrics import average_precision_score

from pipeline.evaluate.metrics import class_protocol
from tests.reference import average_precision, mean_reciprocal_rank


def loop_ap(relevance):
    hits, total = 0, 0.0
    for rank, rel in enumerate(relevance):
        if rel:
            hits += 1
            total += hits / (rank + 1)
    return total / hits if hits else float("nan")


def test_ap_hand_worked_examples():
    matches = np.array([
        [1, 0, 1, 0],  # (1/1 + 2/3) / 2
        [0, 0, 0, 1],  # all positives last: 1/4
        [1, 1, 0, 0],  # positive at rank 0 and 1: 1
        [0, 0, 0, 0],  # no positive: NaN, left out of means
    ], dtype=bool)
    ap = average_precision(matches)
    assert np.allclose(ap[:3], [(1 + 2 / 3) / 2, 0.25, 1.0])
    assert np.isnan(ap[3])


def test_ap_equals_loop_and_sklearn_on_random_rankings(rng):
    matches = rng.random((50, 30)) < 0.2
    matches[:, 0] |= ~matches.any(axis=1)
    ap = average_precision(matches)
    assert np.allclose(ap, [loop_ap(row) for row in matches])
    scores = -np.arange(30)
    assert np.allclose(ap, [average_precision_score(row, scores) for row in matches])


def test_class_protocol_removes_the_query_from_its_own_gallery():
    # four 1-d points; rows 0..3, labels a a b b, every row is both query and gallery
    feats = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1])
    rows = np.arange(4)
    result = class_protocol(feats, labels, rows, feats, labels, rows, recall_at=(1, 2))
    # query 0 ranks 1 (same), 2, 3 -> AP 1; query 1 ranks 0 or 2 (tie 0.8 vs 0.96: 2 first) -> 0, then 0: AP 1/2
    # query 2 ranks 1 (0.96) then 3 (0.8) -> AP 1/2; query 3 ranks 2 -> AP 1
    assert np.isclose(result["mAP"], (1 + 0.5 + 0.5 + 1) / 4)
    assert np.isclose(result["R@1"], 0.5) and np.isclose(result["R@2"], 1.0)


def dense_reference(q, q_labels, q_rows, db, db_labels, db_rows, k=1, q_cams=None, db_cams=None):
    """Full similarity matrix, argsort, loop AP: the obvious computation."""
    sims = q @ db.T
    aps, hits = [], []
    for i in range(len(q)):
        order = np.argsort(-sims[i], kind="stable")
        keep = [j for j in order if db_rows[j] != q_rows[i]
                and not (q_cams is not None and db_labels[j] == q_labels[i] and db_cams[j] == q_cams[i])]
        relevance = [db_labels[j] == q_labels[i] for j in keep]
        if any(relevance):
            aps.append(loop_ap(relevance))
            hits.append(any(relevance[:k]))
    return np.mean(aps), np.mean(hits)


def test_batched_faiss_ranking_equals_dense_computation(rng):
    db = rng.standard_normal((120, 8)).astype(np.float32)
    labels = rng.integers(0, 6, 120)
    rows = np.arange(120)
    q_rows = rows[:50]  # queries are also gallery images: self removed
    got = class_protocol(db[q_rows], labels[q_rows], q_rows, db, labels, rows, recall_at=(1, 5),
                         budget_bytes=4 * 120 * 7)  # 7 queries per batch
    ref_map, ref_r5 = dense_reference(db[q_rows], labels[q_rows], q_rows, db, labels, rows, k=5)
    assert np.isclose(got["mAP"], ref_map) and np.isclose(got["R@5"], ref_r5)


def test_reid_camera_filtering_on_a_hand_made_case():
    # query: person 7 seen by camera 1. gallery ranked by similarity:
    #   g0 person 7 cam 1 (same camera: removed), g1 person 3 cam 2, g2 person 7 cam 2, g3 person 7 cam 1 (removed)
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    db = np.array([[1.0, 0.0], [0.9, 0.436], [0.8, 0.6], [0.1, 0.995]], dtype=np.float32)
    labels = np.array([7, 3, 7, 7])
    result = class_protocol(q, np.array([7]), np.array([100]), db, labels, np.arange(4), recall_at=(1, 2),
                            q_cameras=np.array([1]), db_cameras=np.array([1, 2, 2, 1]))
    # kept ranking: g1 (wrong), g2 (right) -> AP 1/2, CMC rank-1 miss, rank-2 hit
    assert np.isclose(result["mAP"], 0.5) and result["R@1"] == 0.0 and result["R@2"] == 1.0
    without = class_protocol(q, np.array([7]), np.array([100]), db, labels, np.arange(4), recall_at=(1,))
    assert without["R@1"] == 1.0  # same-camera match counted when cameras are not given
    ref_map, _ = dense_reference(q, np.array([7]), np.array([100]), db, labels, np.arange(4),
                                 q_cams=np.array([1]), db_cams=np.array([1, 2, 2, 1]))
    assert np.isclose(result["mAP"], ref_map)


def test_class_protocol_with_disjoint_query_and_gallery_keeps_every_gallery_image():
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    db = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    result = class_protocol(q, np.array([1]), np.array([10]), db, np.array([1, 0]), np.array([20, 21]))
    assert np.isclose(result["mAP"], 0.5) and result["R@1"] == 0.0


def test_precision_recall_curve_hand_worked():
    from pipeline.evaluate.metrics import RECALL_LEVELS
    from tests.reference import interpolated_precision
    relevant = np.array([[True, False, True, False]])
    curve = interpolated_precision(relevant, np.ones_like(relevant))[0]
    # positives at ranks 1 and 3: precision 1 up to recall 0.5, then 2/3 up to recall 1
    assert np.allclose(curve[RECALL_LEVELS <= 0.5], 1.0)
    assert np.allclose(curve[RECALL_LEVELS > 0.5], 2 / 3)


def test_mrr_by_hand():
    # diagonal entries rank 1st, 2nd (0.8 beats 0.5) and 3rd (0.3, 0.4 beat 0.2)
    sim = np.array([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1], [0.3, 0.4, 0.2]])
    assert np.isclose(mean_reciprocal_rank(sim), (1 + 1 / 2 + 1 / 3) / 3)


def test_view_mrr_in_blocks_equals_the_full_matrix(rng):
    from pipeline.data.rows import ArrayRows
    from pipeline.evaluate.metrics import view_mrr
    plain = rng.standard_normal((60, 4)).astype(np.float32)
    views = plain + 0.8 * rng.standard_normal((60, 4)).astype(np.float32)
    full = mean_reciprocal_rank(plain @ views.T)
    assert full < 0.95  # the diagnostic is not trivially 1 here
    got = view_mrr(ArrayRows(plain, block=7), ArrayRows(views, block=7), budget_bytes=4 * 60 * 5)
    assert np.isclose(got, full, rtol=0, atol=1e-12)
    sampled = view_mrr(ArrayRows(plain), ArrayRows(views), sample=10)
    picks = np.unique(np.linspace(0, 59, 10).astype(int))
    sims = plain[picks] @ views.T
    assert np.isclose(sampled, np.mean(1 / ((sims > sims[np.arange(10), picks][:, None]).sum(1) + 1)))
