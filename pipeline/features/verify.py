"""Cached features against the live teacher: a seeded sample of items, their cached and recomputed
descriptors (GeM, Radenović et al., TPAMI 2018, as extraction computed them), and how far apart the two are."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def sample_items(n_rows: int, view_rows: np.ndarray, n_views: int, size: int, seed: int) -> np.ndarray:
    """A seeded sample of up to `size` items (view · N + row), ascending: half of them augmented views
    (views 1..V−1 of `view_rows`) when the file holds views, the rest plain images."""
    rng = np.random.default_rng(seed)
    view_rows = np.asarray(view_rows, dtype=np.int64)
    n_view_items = (n_views - 1) * len(view_rows)
    n_views_drawn = min(size // 2, n_view_items)
    plain = rng.choice(n_rows, min(size - n_views_drawn, n_rows), replace=False)
    drawn = rng.choice(n_view_items, n_views_drawn, replace=False) if n_views_drawn else np.zeros(0, dtype=np.int64)
    views = 1 + drawn // max(len(view_rows), 1)
    view_items = views * n_rows + view_rows[drawn % max(len(view_rows), 1)] if n_views_drawn else drawn
    return np.sort(np.concatenate([plain, view_items]).astype(np.int64))


def row_cosines(cached: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Cosine between each cached row and the live row beside it (0 where either is all zeros)."""
    cached, live = np.asarray(cached, dtype=np.float64), np.asarray(live, dtype=np.float64)
    norms = np.linalg.norm(cached, axis=1) * np.linalg.norm(live, axis=1)
    return np.divide((cached * live).sum(axis=1), norms, out=np.zeros(len(cached)), where=norms > 0)


def agreement(cached: np.ndarray, live: np.ndarray, labels: Sequence[str], worst: int = 5) -> dict:
    """min and mean cosine, max abs difference, and the `worst` items (label, cosine, max abs difference)."""
    cosines = row_cosines(cached, live)
    diffs = np.abs(np.asarray(cached, dtype=np.float64) - live).max(axis=1)
    order = np.argsort(cosines, kind="stable")[:worst]
    return {"min_cosine": float(cosines.min()), "mean_cosine": float(cosines.mean()),
            "max_abs_diff": float(diffs.max()),
            "worst": [{"item": labels[i], "cosine": float(cosines[i]), "max_abs_diff": float(diffs[i])} for i in order]}
