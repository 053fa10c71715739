import warnings

import numpy as np
import pytest

from pipeline.whitening.pca import apply_whitening, learn_pca


def l2n(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def teacher_like(rng, latent, dim):
    """Non-negative, anisotropic, l2-normalised features (as GeM outputs are)."""
    mixing = rng.standard_normal((latent.shape[1], dim)) * rng.uniform(0.1, 3.0, dim)
    return l2n(np.maximum(latent @ mixing, 0) + 0.05)


def test_whitening_gives_identity_covariance_on_training_features(rng):
    z = teacher_like(rng, rng.standard_normal((3000, 24)), 40)
    w = learn_pca(z, n_components=16, power=0.5)
    u = (z - w.mean) @ w.projection.T  # before the final l2n
    assert np.allclose(u.T @ u / len(z), np.eye(16), atol=1e-8)


def test_projection_rows_are_eigenvectors_scaled_by_eigenvalue_power(rng):
    z = teacher_like(rng, rng.standard_normal((2000, 12)), 20)
    w = learn_pca(z, n_components=6, power=0.25)
    centred = z - z.mean(axis=0)
    cov = centred.T @ centred / len(z)
    # sign-independent: W Σ Wᵀ = diag(λ^(1 - 2·power))
    assert np.allclose(w.projection @ cov @ w.projection.T, np.diag(w.eigenvalues[:6] ** 0.5), atol=1e-9)
    assert np.all(np.diff(w.eigenvalues) <= 0)


def test_whitened_pairs_share_the_sin_power_angle_distribution_across_teachers(rng):
    latent = rng.standard_normal((6000, 48))
    n_c = 16
    pairs = rng.integers(0, len(latent), size=(20000, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    raw_means, whitened = [], []
    for dim in (64, 96):
        z = teacher_like(rng, latent, dim)
        u = apply_whitening(learn_pca(z, n_c), z)
        raw_means.append(np.mean(np.sum(z[pairs[:, 0]] * z[pairs[:, 1]], axis=1)))
        whitened.append(np.sum(u[pairs[:, 0]] * u[pairs[:, 1]], axis=1))
    # raw cosines are far from isotropic (non-negative features) ...
    assert min(raw_means) > 0.3
    # ... whitened ones follow density ∝ sin^(n_c-2)(θ): E[cos θ] = 0, Var[cos θ] = 1/n_c
    for cos in whitened:
        assert abs(cos.mean()) < 0.01
        assert abs(cos.var() * n_c - 1) < 0.1
    quantiles = np.linspace(0.05, 0.95, 19)
    assert np.abs(np.quantile(whitened[0], quantiles) - np.quantile(whitened[1], quantiles)).max() < 0.03


def test_apply_whitening_outputs_unit_rows(rng):
    z = teacher_like(rng, rng.standard_normal((500, 8)), 16)
    u = apply_whitening(learn_pca(z, 8), z)
    assert u.dtype == np.float32 and u.shape == (500, 8)
    assert np.allclose(np.linalg.norm(u, axis=1), 1, atol=1e-5)


def test_warns_when_components_exceed_informative_eigenvalues(rng):
    z = l2n(rng.standard_normal((400, 3)) @ rng.standard_normal((3, 10)))  # rank 3
    with pytest.warns(UserWarning, match=r"keeps 5 components but only 3 eigenvalues"):
        w = learn_pca(z, 5)
    assert w.n_informative == 3
    assert np.isfinite(w.projection).all()


def test_no_warning_with_enough_images_and_signal(rng):
    z = teacher_like(rng, rng.standard_normal((1000, 16)), 24)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        learn_pca(z, 8)


def test_angle_statistics_of_isotropic_features_follow_the_sin_power_law(rng):
    from pipeline.whitening.pca import angle_statistics
    x = rng.standard_normal((5000, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    stats = angle_statistics(x)
    assert abs(stats["mean_cos"]) < 0.01 and abs(stats["var_cos"] - 1 / 16) < 0.005
    skewed = np.abs(x)  # all in one orthant: cosines positive
    assert angle_statistics(skewed)["mean_cos"] > 0.5


def test_whitening_from_blocks_equals_the_in_memory_result(rng):
    from pipeline.whitening.pca import learn_pca_blocks
    z = teacher_like(rng, rng.standard_normal((2500, 16)), 48)
    whole = learn_pca(z, n_components=12, power=0.5)
    blocks = [z[a:b] for a, b in ((0, 7), (7, 1000), (1000, 1001), (1001, 2500))]  # uneven, one of a single row
    streamed = learn_pca_blocks(iter(blocks), n_components=12, power=0.5)
    centred = z - z.mean(axis=0)
    assert np.allclose(streamed.mean, z.mean(axis=0), rtol=0, atol=1e-12)
    assert np.allclose(streamed.eigenvalues, np.linalg.eigvalsh(centred.T @ centred / len(z))[::-1], rtol=0, atol=1e-12)
    # projections agree up to the sign of each eigenvector
    signs = np.sign(np.sum(streamed.projection * whole.projection, axis=1))
    assert np.allclose(streamed.projection * signs[:, None], whole.projection, rtol=0, atol=1e-10)
    assert streamed.n_informative == whole.n_informative


def test_one_block_is_bit_identical_to_the_in_memory_formula(rng):
    from pipeline.whitening.pca import MomentAccumulator
    z = teacher_like(rng, rng.standard_normal((300, 8)), 20).astype(np.float32)
    moments = MomentAccumulator()
    moments.add(z)
    z64 = z.astype(np.float64)
    centred = z64 - z64.mean(axis=0)
    assert np.array_equal(moments.mean, z64.mean(axis=0))
    assert np.array_equal(moments.covariance(), centred.T @ centred / len(z))
