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
