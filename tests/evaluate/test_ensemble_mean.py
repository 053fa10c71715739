import numpy as np

from pipeline.evaluate.ensemble import ensemble_mean_features


def test_ensemble_mean_inner_products_average_the_teachers_similarities(rng):
    a = rng.standard_normal((5, 4)); a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = rng.standard_normal((5, 6)); b /= np.linalg.norm(b, axis=1, keepdims=True)
    joint = ensemble_mean_features([a, b])
    for i in range(5):
        for j in range(5):
            assert np.isclose(joint[i] @ joint[j], (a[i] @ a[j] + b[i] @ b[j]) / 2)
    assert np.allclose(np.linalg.norm(joint, axis=1), 1.0)


def test_the_ensemble_view_mrr_equals_the_full_matrix_of_the_joint_features(rng):
    # Regression: the joint features came out float64 and each row's own score was kept in float32, so a
    # view could rank below itself (demo: EM MRR 0.091 where the full matrix gives 0.114).
    from pipeline.data.rows import ArrayRows
    from pipeline.evaluate.ensemble import EnsembleRows
    from pipeline.evaluate.metrics import view_mrr
    from tests.reference import mean_reciprocal_rank
    plains, views = [], []
    for dim in (8, 5):
        p = rng.standard_normal((200, dim)).astype(np.float32)
        v = p + 0.9 * rng.standard_normal((200, dim)).astype(np.float32)
        plains.append(p / np.linalg.norm(p, axis=1, keepdims=True))
        views.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    joint_p, joint_v = ensemble_mean_features(plains), ensemble_mean_features(views)
    assert joint_p.dtype == np.float32
    full = mean_reciprocal_rank(joint_p @ joint_v.T)
    got = view_mrr(EnsembleRows([ArrayRows(p, block=30) for p in plains]),
                   EnsembleRows([ArrayRows(v, block=30) for v in views]), budget_bytes=4 * 200 * 30)
    assert full < 0.9 and np.isclose(got, full, rtol=0, atol=1e-12)
