"""Extraction's bookkeeping: which items an extraction describes, in which resumable chunks, and how
finished chunks become the feature file.

Items (view · N + row) are described in increasing order: every row's plain image, then views
1..V−1 of the training rows; chunk c holds positions [c · size, (c + 1) · size) of that order.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np


def extraction_items(n_rows: int, view_rows: np.ndarray, n_views: int) -> np.ndarray:
    """Every item to describe, increasing: rows 0..N−1 (view 0), then v · N + view_rows for v = 1..V−1."""
    return np.concatenate([np.arange(n_rows)] + [v * n_rows + np.asarray(view_rows) for v in range(1, n_views)])


def chunk_count(n_items: int, chunk_size: int) -> int:
    """Chunks of chunk_size positions that cover n_items (the last may be short)."""
    return math.ceil(n_items / chunk_size)


def chunk_length(chunk: int, n_items: int, chunk_size: int) -> int:
    """Positions in chunk `chunk`."""
    return min(chunk_size, n_items - chunk * chunk_size)


def chunks_of_rank(n_chunks: int, done: set[int], rank: int, world: int) -> list[int]:
    """The chunks rank `rank` of `world` extracts: chunk c belongs to rank c % world, less those already done.

    The share depends on the chunk's number only, never on which chunks a rank saw finished when it
    listed them (others may be publishing meanwhile), so no chunk is skipped or extracted twice."""
    return [c for c in range(rank, n_chunks, world) if c not in done]


def pending_positions(pending: list[int], n_items: int, chunk_size: int) -> np.ndarray:
    """The item positions of the given chunks, in order."""
    return np.concatenate([np.arange(c * chunk_size, c * chunk_size + chunk_length(c, n_items, chunk_size))
                           for c in pending] or [np.zeros(0, dtype=np.int64)])


class ChunkCollector:
    """Gathers described items batch by batch and hands back each chunk once all its items are in."""

    def __init__(self, items: np.ndarray, chunk_size: int):
        self.items, self.chunk_size = items, chunk_size
        self.buffers: dict[int, dict[int, np.ndarray]] = {}

    def add(self, batch_items: np.ndarray, feats: np.ndarray) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Take a batch's (items, features); yield (chunk, {"rows": positions, "features"}) for chunks now complete."""
        for position, feat in zip(np.searchsorted(self.items, batch_items), feats):
            self.buffers.setdefault(int(position) // self.chunk_size, {})[int(position)] = feat
        complete = [c for c, got in self.buffers.items()
                    if len(got) == chunk_length(c, len(self.items), self.chunk_size)]
        for chunk in complete:
            got = self.buffers.pop(chunk)
            positions = sorted(got)
            yield chunk, {"rows": np.asarray(positions), "features": np.stack([got[p] for p in positions])}


def write_chunk(writer, items: np.ndarray, n_rows: int, positions: np.ndarray, feats: np.ndarray) -> None:
    """Write one finished chunk's features (at item `positions`) into a feature_writer: plain rows and views."""
    chunk_items = items[positions]
    views = chunk_items // n_rows
    for view in np.unique(views):
        mine = views == view
        if view == 0:
            writer.write(chunk_items[mine], feats[mine])
        else:
            writer.write_view(int(view), chunk_items[mine] % n_rows, feats[mine])
