"""Refining mined neighbour lists by their neighbours' lists (one round of NN-descent's local join).

An approximate index misses the neighbours that fell into lists it did not visit; those are usually
among the neighbours of the neighbours it did find (a landmark's photos find each other), so one
pass that re-ranks each row's list joined with the lists of its few nearest recovers most of them,
at a cost per row that does not grow with N.
"""
from __future__ import annotations

import numpy as np

from pipeline.index.search import rerank_exact


def refine_neighbours(feats: np.ndarray, ids: np.ndarray, start: int, stop: int,
                      width: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (sims, ids) of rows start..stop among their candidates, re-ranked exactly from `feats`.

    ids: (N, k) every row's current neighbours (positions in feats, never the row itself). A row's
    candidates are its own k and the k of each of its `width` nearest, itself and repeats left out;
    ties go to the lower id. Memory: (stop − start) × (width + 1) × k candidates.
    """
    own = ids[start:stop].astype(np.int64)
    k = own.shape[1]
    candidates = np.sort(np.concatenate([own, ids[own[:, :width]].reshape(len(own), -1)], axis=1), axis=1)
    repeated = np.zeros(candidates.shape, dtype=bool)
    repeated[:, 1:] = candidates[:, 1:] == candidates[:, :-1]
    candidates[repeated | (candidates == np.arange(start, stop)[:, None])] = -1  # -1: scored −inf by rerank_exact
    sims, ranked = rerank_exact(feats[start:stop], feats, candidates)
    return sims[:, :k], ranked[:, :k]
