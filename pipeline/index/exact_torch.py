"""Exact top-K neighbours with torch (`mine.index: exact`): blocked matrix products and `torch.topk`, on a
CUDA GPU when there is one. Mining on a GPU then needs no FAISS GPU build, and its lists are exact by
construction (recall 1.0 up to ties)."""
from __future__ import annotations

import numpy as np
import torch

from pipeline.index.search import by_similarity

# Similarities computed at a time: queries × gallery rows of one block (float32: 1 GiB).
PAIRS_PER_BLOCK = 1 << 28
# Share of a GPU's free memory the gallery may take to stay there between query batches.
GALLERY_SHARE = 0.5


class ExactSearch:
    """The rows of `feats` (N, D), searched exactly for the top k of any of them, itself excluded.

    The gallery sits on the device when it takes under GALLERY_SHARE of its free memory, else it is streamed
    from host memory block by block; either way memory grows with the query batch × a block, not with N²."""

    def __init__(self, feats: np.ndarray, device: torch.device, block_rows: int | None = None):
        self.device = device
        self.host = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
        self.block_rows = block_rows
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
        resident = free is None or self.host.numel() * 4 <= GALLERY_SHARE * free
        self.gallery = self.host.to(device) if resident else self.host

    def search(self, start: int, stop: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(sims, ids) of the top k other rows of rows start..stop, by decreasing similarity: (n, k) each."""
        q = self.host[start:stop].to(self.device)
        n, total = len(q), len(self.host)
        block = self.block_rows or max(k + 1, PAIRS_PER_BLOCK // max(n, 1))
        best_sims = torch.empty((n, 0), device=self.device)
        best_ids = torch.empty((n, 0), dtype=torch.int64, device=self.device)
        own = torch.arange(start, stop, device=self.device)
        for first in range(0, total, block):
            part = self.gallery[first:first + block].to(self.device, non_blocking=True)
            sims = q @ part.T
            ids = torch.arange(first, first + len(part), device=self.device).expand(n, -1)
            sims = sims.masked_fill(ids == own[:, None], float("-inf"))  # a row is not its own neighbour
            sims, ids = torch.cat([best_sims, sims], 1), torch.cat([best_ids, ids], 1)
            if sims.shape[1] > k:
                sims, picked = sims.topk(k, dim=1)
                ids = ids.gather(1, picked)
            best_sims, best_ids = sims, ids
        return by_similarity(best_sims.cpu().numpy(), best_ids.cpu().numpy())
