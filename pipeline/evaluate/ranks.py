"""Ranks of each query's positives in its gallery ranking, without sorting the gallery (revisited Oxford/Paris, Radenović et al., CVPR 2018).

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

import sys
from collections.abc import Iterator, Sequence

import numpy as np

BUDGET_BYTES = 256 << 20  # similarities held per query batch (float32)

# One query's settings: (positives, removed) pairs of gallery-position arrays, e.g. the revisited
# protocol's easy / medium / hard, or the class protocol's single setting.
Settings = Sequence[tuple[np.ndarray, np.ndarray]]


def evaluation_device():
    """The CUDA device when torch is already loaded and sees one (similarities and sorting then run there),
    else None (numpy on CPU). Stages that never load torch (evaluate-teacher, evaluate-em) stay on numpy
    rather than pay its import (about 0.5 GB of memory and seconds) for a check."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch.device("cuda")


def similarity_rows(q: np.ndarray, gallery, budget_bytes: int = BUDGET_BYTES,
                    device=None) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Yield (first query, (b, G) float32 similarities, the same rows sorted or None) for query batches;
    `gallery` is a rows reader (pipeline.data.rows) read block by block, once per batch.

    With a torch `device`, the products and the sorting run there (the rows come back sorted, for
    ahead_counts' binary searches); without, numpy computes the products and nothing is sorted.
    """
    batch = max(1, budget_bytes // (4 * max(len(gallery), 1)))
    resident = None if device is None or not len(q) else gallery_on_device(gallery, device)
    for start in range(0, len(q), batch):
        qb = np.ascontiguousarray(q[start:start + batch], dtype=np.float32)
        if device is None:
            sims = np.empty((len(qb), len(gallery)), dtype=np.float32)
            for first, block in gallery.blocks():
                sims[:, first:first + len(block)] = qb @ block.T
            yield start, sims, None
            continue
        import torch
        q_dev = torch.from_numpy(qb).to(device)
        if resident is not None:
            sims_dev = q_dev @ resident.T
        else:
            sims_dev = torch.empty((len(qb), len(gallery)), dtype=torch.float32, device=device)
            for first, block in gallery.blocks():
                sims_dev[:, first:first + len(block)] = q_dev @ torch.from_numpy(block).to(device).T
        yield start, sims_dev.cpu().numpy(), torch.sort(sims_dev, dim=1).values.cpu().numpy()


DEVICE_SHARE = 0.5  # of a GPU's free memory the gallery may take to stay there between query batches


def gallery_on_device(gallery, device):
    """The whole gallery as one (G, D) tensor on `device`, read and uploaded once, when it takes under
    DEVICE_SHARE of the GPU's free memory; None otherwise (each query batch then streams it block by block)."""
    import torch
    size = 4 * len(gallery) * gallery.dim
    if device.type == "cuda" and size > DEVICE_SHARE * torch.cuda.mem_get_info(device)[0]:
        return None
    resident = torch.empty((len(gallery), gallery.dim), dtype=torch.float32, device=device)
    for first, block in gallery.blocks():
        resident[first:first + len(block)] = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)).to(device)
    return resident


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


def ranks_in_row(row: np.ndarray, settings: Settings, sorted_row: np.ndarray | None = None) -> list[np.ndarray]:
    """Sorted 0-based ranks of each setting's positives among its kept items, from one similarity row
    (and, when at hand, the row sorted in increasing order)."""
    wanted = [np.setdiff1d(positives, removed) for positives, removed in settings]
    every = np.unique(np.concatenate([*wanted, *(removed for _, removed in settings), np.zeros(0, np.int64)]))
    # Counting against each target costs G per target; sorting the row once costs G log G.
    if sorted_row is None and len(every) > 2 * np.log2(max(len(row), 2)):
        sorted_row = np.sort(row)
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


def positive_ranks(q: np.ndarray, gallery, settings_of: Sequence[Settings], budget_bytes: int = BUDGET_BYTES,
                   device="auto") -> list[list[np.ndarray]]:
    """For every query (rows of `q`), the sorted ranks of each setting's positives; see the module docstring.

    settings_of[i]: query i's (positives, removed) pairs as gallery positions. Memory: one query
    batch's similarities (≤ budget_bytes, twice over on a GPU) and one gallery block. `device`:
    "auto" = evaluation_device(); None = numpy on CPU.
    """
    device = evaluation_device() if device == "auto" else device
    out: list[list[np.ndarray]] = []
    for start, sims, sorted_sims in similarity_rows(q, gallery, budget_bytes, device):
        for i, row in enumerate(sims):
            out.append(ranks_in_row(row, settings_of[start + i], None if sorted_sims is None else sorted_sims[i]))
    return out
