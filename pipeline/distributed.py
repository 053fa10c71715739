"""Multi-process runs under `torchrun`: process group from the environment, shards, rank-0-only writes.

Without torchrun (no WORLD_SIZE, or WORLD_SIZE=1) every function here is a no-op for a single process.
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


TRAINING_TIMEOUT_MINUTES = 10  # torch's default: a training collective that waits longer has lost a rank
_waits = None  # the gloo group of the long waits for rank 0 (main_first)


def init_from_env(wait_minutes: float = 120) -> None:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU; training collectives wait up
    to TRAINING_TIMEOUT_MINUTES) and a second, gloo group whose barrier waits up to `wait_minutes` while
    rank 0 alone writes a shared file; nothing for a single process."""
    global _waits
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo",
                                timeout=datetime.timedelta(minutes=TRAINING_TIMEOUT_MINUTES))
        _waits = dist.new_group(backend="gloo", timeout=datetime.timedelta(minutes=wait_minutes))


def finish() -> None:
    """Leave the process group (every rank, once its last collective is done); nothing for a single process."""
    global _waits
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _waits = None


def to_sync_batchnorm(net: torch.nn.Module) -> torch.nn.Module:
    """Every BatchNorm as SyncBatchNorm; timm's BatchNormAct2d keeps its activation and drop (timm's own
    conversion, which torch's would replace by a bare SyncBatchNorm)."""
    if any(type(m).__module__.startswith("timm.") for m in net.modules()):
        from timm.layers import convert_sync_batchnorm
        return convert_sync_batchnorm(net)
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)


def synchronised_batchnorm(net: torch.nn.Module, device: torch.device, world: int) -> torch.nn.Module:
    """The network with SyncBatchNorm in place of BatchNorm when `world` ranks train on CUDA: every rank then
    normalises with the statistics of the global batch, as one GPU with the whole batch would (gloo on the
    CPU has no SyncBatchNorm: there each rank keeps its shard's statistics)."""
    if world > 1 and device.type == "cuda":
        return to_sync_batchnorm(net)
    return net


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on the process that writes outputs (rank 0)."""
    return rank_and_world()[0] == 0


def barrier(group=None) -> None:
    """Wait for every rank (no-op for a single process)."""
    if rank_and_world()[1] > 1:
        dist.barrier(group=group)


def gather_batch(q: torch.Tensor, labels: torch.Tensor, items: torch.Tensor, *targets: torch.Tensor):
    """The whole step's batch on every rank, in rank order: q with its gradient, labels, items and any live
    (T, B, D) targets (online distillation, gathered along B) without.

    Every rank then computes the same global loss; the gather's backward sums the ranks' gradients
    of their own rows and DDP averages over the ranks, which together give the global loss's gradient.
    Ranks must hold batches of equal size (Shard and drop_last see to it). A single process gets its
    inputs back unchanged.
    """
    if rank_and_world()[1] == 1:
        return q, labels, items, *targets
    from torch.distributed.nn.functional import all_gather as all_gather_with_grad

    def plain(t: torch.Tensor, dim: int = 0) -> torch.Tensor:
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts, dim=dim)

    return (torch.cat(all_gather_with_grad(q.contiguous())), plain(labels), plain(items),
            *(plain(t, dim=1) for t in targets))


def average_batchnorm_statistics(net: torch.nn.Module) -> None:
    """Average every BatchNorm layer's running mean and variance over the ranks (no-op for one process)."""
    world = rank_and_world()[1]
    if world == 1:
        return
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            for buffer in (module.running_mean, module.running_var):
                dist.all_reduce(buffer)
                buffer /= world


def main_first(make):
    """make() on rank 0, then on the other ranks once rank 0 is done (e.g. a scratch folder rank 0 may reset)."""
    result = make() if is_main() else None
    barrier(_waits)  # rank 0 may write gigabytes meanwhile: the long wait, not the training collectives' timeout
    return result if is_main() else make()


class Shard(Sampler):
    """This rank's share of every global batch of another sampler's epoch.

    Every rank draws the same epoch order (same seeded generator) and takes its contiguous `per_rank`
    indices of each global batch of per_rank × world, so that gathering the ranks' batches in rank
    order (gather_batch) gives back the single-process batch, in its order. An incomplete last
    global batch is left out (training drops it anyway), so no rank waits for a step the others never
    take. With per_rank even, positive pairs (x, y consecutive) stay together.
    """

    def __init__(self, sampler: Sampler, rank: int, world: int, per_rank: int):
        self.sampler, self.rank, self.world, self.per_rank = sampler, rank, world, per_rank

    def __len__(self) -> int:
        return len(self.sampler) // (self.per_rank * self.world) * self.per_rank

    def __iter__(self):
        indices = list(self.sampler)
        step = self.per_rank * self.world
        for first in range(0, len(indices) - step + 1, step):
            yield from indices[first + self.rank * self.per_rank:first + (self.rank + 1) * self.per_rank]
