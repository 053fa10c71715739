"""Ranks of each query's positives in its gallery ranking, without sorting the gallery (METHODS §7).

Every metric of the class and revisited protocols (AP, Recall@k / CMC, mP@k, the precision–recall
curve) depends on a ranking only through the ranks of the positives once removed items (the
query itself, junk, same-camera matches) are taken out. The rank of a positive is the number of
kept gallery items that come before it: items that score higher, and items that score the same
and sit later in the gallery (the order exact FAISS search returns ties in, kept so that
results do not change). So a query needs its row of similarities and a count per positive,
O(G log G) at worst, instead of the whole ranking; the similarities of a query batch are
computed block by block over the gallery, and the batch is sized so that its rows never exceed
`budget_bytes`.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

BUDGET_BYTES = 256 << 20  # similarities held per query batch (float32)

# One query's settings: (positives, removed) pairs of gallery-position arrays, e.g. the revisited
# protocol's easy / medium / hard, or the class protocol's single setting.
Settings = Sequence[tuple[np.ndarray, np.ndarray]]


def similarity_rows(q: np.ndarray, gallery, budget_bytes: int = BUDGET_BYTES) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first query, (b, G) float32 similarities) for query batches; `gallery` is a rows reader
    (pipeline.data.rows) read block by block, once per batch."""
    batch = max(1, budget_bytes // (4 * max(len(gallery), 1)))
    for start in range(0, len(q), batch):
        qb = np.ascontiguousarray(q[start:start + batch], dtype=np.float32)
        sims = np.empty((len(qb), len(gallery)), dtype=np.float32)
        for first, block in gallery.blocks():
            sims[:, first:first + len(block)] = qb @ block.T
        yield start, sims


def ahead_counts(row: np.ndarray, targets: np.ndarray, sorted_row: np.ndarray | None = None) -> np.ndarray:
    """For each gallery position in `targets`, how many of `row`'s items come before it in the ranking:
    a higher similarity, or the same similarity at a later position."""
    scores = row[targets]
    if sorted_row is None:
        higher = (row[None, :] > scores[:, None]).sum(axis=1)
        equal = (row[None, :] == scores[:, None]).sum(axis=1)
    else:
        right = np.searchsorted(sorted_row, scores, side="right")
        higher = len(row) - right
        equal = right - np.searchsorted(sorted_row, scores, side="left")
    counts = higher.astype(np.int64)
    for i in np.flatnonzero(equal > 1):  # exact ties are rare: count the later ones directly
        counts[i] += int(np.count_nonzero(row[targets[i] + 1:] == scores[i]))
    return counts


def ranks_in_row(row: np.ndarray, settings: Settings) -> list[np.ndarray]:
    """Sorted 0-based ranks of each setting's positives among its kept items, from one similarity row."""
    wanted = [np.setdiff1d(positives, removed) for positives, removed in settings]
    every = np.unique(np.concatenate([*wanted, *(removed for _, removed in settings), np.zeros(0, np.int64)]))
    # Counting against each target costs G per target; sorting the row once costs G log G.
    sorted_row = np.sort(row) if len(every) > 2 * np.log2(max(len(row), 2)) else None
    ahead = dict(zip(every.tolist(), ahead_counts(row, every.astype(np.int64), sorted_row).tolist()))
    out = []
    for positives, (_, removed) in zip(wanted, settings):
        if len(positives) == 0:
            out.append(np.zeros(0, dtype=np.int64))
            continue
        rank = np.array([ahead[p] for p in positives.tolist()], dtype=np.int64)
        if len(removed):
            removed = np.unique(removed)
            s_p, s_r = row[positives][:, None], row[removed][None, :]
            removed_ahead = (s_r > s_p) | ((s_r == s_p) & (removed[None, :] > positives[:, None]))
            rank -= removed_ahead.sum(axis=1)
        out.append(np.sort(rank))
    return out


def positive_ranks(q: np.ndarray, gallery, settings_of: Sequence[Settings],
                   budget_bytes: int = BUDGET_BYTES) -> list[list[np.ndarray]]:
    """For every query (rows of `q`), the sorted ranks of each setting's positives; see the module docstring.

    settings_of[i]: query i's (positives, removed) pairs as gallery positions. Memory: one query
    batch's similarities (≤ budget_bytes) and one gallery block.
    """
    out: list[list[np.ndarray]] = []
    for start, sims in similarity_rows(q, gallery, budget_bytes):
        for i, row in enumerate(sims):
            out.append(ranks_in_row(row, settings_of[start + i]))
    return out
