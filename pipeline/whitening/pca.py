"""PCA whitening learned per teacher on the training split (Whiten-MTD, supplementary)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from pipeline.errors import RdistillError

CLAMP_RATIO = 1e-5  # eigenvalues below max(λ)·1e-5 are clamped up to it (Whiten-MTD, supplementary)
NO_VARIANCE = 1e-12  # of unit-length features (total variance ≤ 1): below it, float rounding, not signal


@dataclass(frozen=True)
class Whitening:
    """Frozen whitening u = l2n(W (z − b)): mean b (D,), projection W (c, D), eigenvalues λ (D,) descending."""

    mean: np.ndarray
    projection: np.ndarray
    eigenvalues: np.ndarray
    n_informative: int  # eigenvalues above the clamp threshold


class MomentAccumulator:
    """Mean and covariance of rows fed block by block, in float64 (Whiten-MTD, supplementary: b and Σ).

    Each block's own mean and centred scatter are merged with the running ones (Chan, Golub and
    LeVeque's pairwise update), so memory is one block plus two D×D matrices, and a single block
    gives exactly the in-memory `z.mean(0)` and `(z − b)ᵀ(z − b)`.
    """

    def __init__(self):
        self.count, self.mean, self.scatter = 0, None, None

    def add(self, block: np.ndarray) -> None:
        """Fold (n, D) rows into the running moments."""
        if len(block) == 0:
            return
        z64 = block.astype(np.float64)
        mean = z64.mean(axis=0)
        centred = z64 - mean
        scatter = centred.T @ centred
        n = len(block)
        if self.count == 0:
            self.count, self.mean, self.scatter = n, mean, scatter
            return
        total = self.count + n
        delta = mean - self.mean
        self.scatter += scatter + np.outer(delta, delta) * (self.count * n / total)
        self.mean = self.mean + delta * (n / total)
        self.count = total

    def covariance(self) -> np.ndarray:
        """Σ = scatter / M (population covariance, as Whiten-MTD, supplementary)."""
        return self.scatter / self.count


def learn_pca(z: np.ndarray, n_components: int, power: float = 0.5) -> Whitening:
    """Whiten-MTD, supplementary: b = mean(z), Σ = (z−b)ᵀ(z−b)/M, W = diag(λ_1..c)^(−power) U[:, :c]ᵀ.

    z: (M, D) l2-normalised training features, in memory. `learn_pca_blocks` does the same from blocks.
    """
    return learn_pca_blocks([z], n_components, power)


def learn_pca_blocks(blocks, n_components: int, power: float = 0.5, source: str = "features") -> Whitening:
    """learn_pca from an iterable of (n, D) row blocks: memory is one block and D×D float64 matrices.

    Warns when n_components exceeds the informative eigenvalues or when M / n_components is small
    (noise gets amplified).
    """
    moments = MomentAccumulator()
    for block in blocks:
        if moments.count == 0 and n_components > block.shape[1]:
            raise RdistillError(f"whiten.n_components: {n_components} exceeds the feature dimension {block.shape[1]}")
        moments.add(block)
    if moments.count == 0:
        raise RdistillError("whitening needs at least one training image")
    return pca_from_moments(moments.mean, moments.covariance(), moments.count, n_components, power, source)


def pca_from_moments(mean: np.ndarray, cov: np.ndarray, m: int, n_components: int, power: float,
                     source: str = "features") -> Whitening:
    """The whitening of Whiten-MTD, supplementary from the training mean b (D,) and covariance Σ (D, D) of M images."""
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    if not eigenvalues[0] > NO_VARIANCE:
        raise RdistillError(f"{source}: the {m} training features are all alike (largest variance {max(eigenvalues[0], 0):.2g}): "
                            "the teacher describes every image the same way; is it trained?")
    threshold = eigenvalues[0] * CLAMP_RATIO
    n_informative = int((eigenvalues > threshold).sum())
    eigenvalues = np.maximum(eigenvalues, threshold)
    if n_components > n_informative:
        warnings.warn(f"whitening keeps {n_components} components but only {n_informative} eigenvalues "
                      f"exceed max(λ)·{CLAMP_RATIO:g}; the rest carry no signal", stacklevel=3)
    if m < 10 * n_components:
        warnings.warn(f"whitening learned on {m} images for {n_components} components (M/n_c = {m / n_components:.1f}); "
                      f"small ratios amplify noise", stacklevel=3)
    projection = eigenvalues[:n_components, None] ** (-power) * eigenvectors[:, :n_components].T
    return Whitening(mean, projection, eigenvalues, n_informative)


def apply_whitening(w: Whitening, z: np.ndarray, batch: int = 65536) -> np.ndarray:
    """u = l2n(W (z − b)) row by row, float32 output. z: (N, D) -> (N, c)."""
    out = np.empty((len(z), w.projection.shape[0]), dtype=np.float32)
    for start in range(0, len(z), batch):
        u = (z[start:start + batch].astype(np.float64) - w.mean) @ w.projection.T
        out[start:start + batch] = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    return out


def angle_statistics(features, n_pairs: int = 20000, seed: int = 0) -> dict:
    """Cosines of random pairs vs the isotropic sin^(n−2)θ law of whitened features (Whiten-MTD, supplementary check).

    features: an (M, D) array or a rows reader (pipeline.data.rows; only the sampled rows are read).
    Returns the sample's mean and variance of cos θ and the law's (0 and 1/n for n dimensions).
    """
    rng = np.random.default_rng(seed)
    a, b = rng.integers(len(features), size=(2, n_pairs))
    keep = a != b
    gather = features.gather if hasattr(features, "gather") else features.__getitem__
    cos = np.einsum("nd,nd->n", gather(a[keep]), gather(b[keep]))
    dim = features.dim if hasattr(features, "dim") else features.shape[1]
    return {"mean_cos": float(cos.mean()), "var_cos": float(cos.var()), "isotropic_var_cos": 1.0 / dim}
