"""Decoded training inputs kept in memory after their first epoch.

A training item (one seeded view of one image at the network's resolution) is the same in every
epoch, so its 8-bit pixels need decoding and resizing only once. The store is a torch tensor in
shared memory when DataLoader workers fill it, so every worker and the main process see each
other's items.
"""
from __future__ import annotations

import logging
import math
import os
import shutil

import torch
from torch.utils.data import Dataset

log = logging.getLogger(__name__)
SHARED_MEMORY = "/dev/shm"


def shared_memory_free() -> int | None:
    """Free bytes of the shared-memory file system, None where there is none to ask (not Linux)."""
    try:
        return shutil.disk_usage(SHARED_MEMORY).free
    except OSError:
        return None


class DecodedCache(Dataset):
    """Serve the (uint8 image, label, key) items of `dataset` from memory once decoded.

    `dataset` must be deterministic (the same item for the same index) and give images of `shape`.
    The first `capacity` items fit in `budget_mb` MiB; later ones are decoded every time.
    `shared`: place the store in shared memory (needed when DataLoader workers fill it).
    """

    def __init__(self, dataset: Dataset, shape: tuple[int, ...], budget_mb: float, shared: bool):
        self.dataset = dataset
        item_bytes = math.prod(shape)
        self.capacity = wanted = min(len(dataset), int(budget_mb * 2**20) // item_bytes)
        free = shared_memory_free() if shared else None
        # every rank on this machine (torchrun's LOCAL_WORLD_SIZE) fills a store of its own
        ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if free is not None and wanted * item_bytes > free // 2 // ranks:
            # A shared store larger than /dev/shm would crash a worker (SIGBUS) when it fills the last pages.
            self.capacity = free // 2 // ranks // item_bytes
            log.warning("%s has %.0f MB free for %d rank(s): keeping %d decoded items in memory instead of %d (raise "
                        "its size, e.g. docker --shm-size, or lower the image cache)", SHARED_MEMORY, free / 2**20,
                        ranks, self.capacity, wanted)
        self.images = torch.empty((self.capacity, *shape), dtype=torch.uint8)
        self.labels = torch.empty(self.capacity, dtype=torch.int64)
        self.keys = torch.empty(self.capacity, dtype=torch.int64)
        self.filled = torch.zeros(self.capacity, dtype=torch.bool)
        if shared:
            for store in (self.images, self.labels, self.keys, self.filled):
                store.share_memory_()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        if i < self.capacity and self.filled[i]:
            return self.images[i], int(self.labels[i]), int(self.keys[i])
        image, label, key = self.dataset[i]
        if i < self.capacity:
            self.images[i], self.labels[i], self.keys[i] = image, label, key
            self.filled[i] = True  # last: a reader never sees a half-written item as filled
        return image, label, key
