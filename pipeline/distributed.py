"""Multi-process runs under `torchrun`: process group from the environment, shards, rank-0-only writes.

Without torchrun (no WORLD_SIZE, or WORLD_SIZE=1) every function here is a no-op for a single process.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def init_from_env() -> None:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU); nothing for a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on the process that writes outputs (rank 0)."""
    return rank_and_world()[0] == 0


def barrier() -> None:
    """Wait for every rank (no-op for a single process)."""
    if rank_and_world()[1] > 1:
        dist.barrier()


def device() -> torch.device:
    """This rank's device: its CUDA device under torchrun, cuda when available, CPU otherwise."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))


def main_first(make):
    """make() on rank 0, then on the other ranks once rank 0 is done (e.g. a scratch folder rank 0 may reset)."""
    result = make() if is_main() else None
    barrier()
    return result if is_main() else make()


class Shard(Sampler):
    """This rank's share of another sampler's epoch: groups of `unit` consecutive indices dealt round-robin.

    Every rank draws the same epoch order (same seeded generator), so the shards are disjoint; each
    rank gets the same number of groups (the last world − 1 at most are left out) so that no rank
    waits for a gradient step the others never take. `unit` = 2 keeps positive pairs together.
    """

    def __init__(self, sampler: Sampler, rank: int, world: int, unit: int = 1):
        self.sampler, self.rank, self.world, self.unit = sampler, rank, world, unit

    def __len__(self) -> int:
        return len(self.sampler) // self.unit // self.world * self.unit

    def __iter__(self):
        indices = list(self.sampler)
        per_rank = len(indices) // self.unit // self.world
        for group in range(self.rank, per_rank * self.world, self.world):
            yield from indices[group * self.unit:(group + 1) * self.unit]
