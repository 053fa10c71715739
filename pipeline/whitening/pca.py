"""PCA whitening learned per teacher on the training split (METHODS §2)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from pipeline.errors import RdistillError

CLAMP_RATIO = 1e-5  # eigenvalues below max(λ)·1e-5 are clamped up to it (METHODS §2)


@dataclass(frozen=True)
class Whitening:
    """Frozen whitening u = l2n(W (z − b)): mean b (D,), projection W (c, D), eigenvalues λ (D,) descending."""

    mean: np.ndarray
    projection: np.ndarray
    eigenvalues: np.ndarray
    n_informative: int  # eigenvalues above the clamp threshold


def learn_pca(z: np.ndarray, n_components: int, power: float = 0.5) -> Whitening:
    """METHODS §2: b = mean(z), Σ = (z−b)ᵀ(z−b)/M, W = diag(λ_1..c)^(−power) U[:, :c]ᵀ.

    z: (M, D) l2-normalised training features. Warns when n_components exceeds the informative
    eigenvalues or when M / n_components is small (noise gets amplified).
    """
    m, d = z.shape
    if n_components > d:
        raise RdistillError(f"whiten.n_components: {n_components} exceeds the feature dimension {d}")
    z64 = z.astype(np.float64)
    mean = z64.mean(axis=0)
    centred = z64 - mean
    cov = centred.T @ centred / m
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    threshold = eigenvalues[0] * CLAMP_RATIO
    n_informative = int((eigenvalues > threshold).sum())
    eigenvalues = np.maximum(eigenvalues, threshold)
    if n_components > n_informative:
        warnings.warn(f"whitening keeps {n_components} components but only {n_informative} eigenvalues "
                      f"exceed max(λ)·{CLAMP_RATIO:g}; the rest carry no signal", stacklevel=2)
    if m < 10 * n_components:
        warnings.warn(f"whitening learned on {m} images for {n_components} components (M/n_c = {m / n_components:.1f}); "
                      f"small ratios amplify noise", stacklevel=2)
    projection = eigenvalues[:n_components, None] ** (-power) * eigenvectors[:, :n_components].T
    return Whitening(mean, projection, eigenvalues, n_informative)


def apply_whitening(w: Whitening, z: np.ndarray, batch: int = 65536) -> np.ndarray:
    """u = l2n(W (z − b)) row by row, float32 output. z: (N, D) -> (N, c)."""
    out = np.empty((len(z), w.projection.shape[0]), dtype=np.float32)
    for start in range(0, len(z), batch):
        u = (z[start:start + batch].astype(np.float64) - w.mean) @ w.projection.T
        out[start:start + batch] = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    return out


def angle_statistics(features: np.ndarray, n_pairs: int = 20000, seed: int = 0) -> dict:
    """Cosines of random pairs vs the isotropic sin^(n−2)θ law of whitened features (METHODS §2 check).

    Returns the sample's mean and variance of cos θ and the law's (0 and 1/n for n dimensions).
    """
    rng = np.random.default_rng(seed)
    a, b = rng.integers(len(features), size=(2, n_pairs))
    keep = a != b
    cos = np.einsum("nd,nd->n", features[a[keep]], features[b[keep]])
    return {"mean_cos": float(cos.mean()), "var_cos": float(cos.var()), "isotropic_var_cos": 1.0 / features.shape[1]}
