"""The single training loop: any network, any objective plug-in, CUDA when available, resumable."""
from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from typing import Protocol
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline.distributed import (average_batchnorm_statistics, barrier, gather_batch, is_main, rank_and_world,
                                  synchronised_batchnorm)
from pipeline.io import atomic_path
from pipeline.train.placement import cached_buffer_names, device_budget, place_objective

log = logging.getLogger(__name__)


class Recipe(Protocol):
    """What the loop reads of a training recipe (params.yaml's recipes, or any object with these fields)."""

    optimizer: str  # adam | sgd
    lr: float
    momentum: float
    weight_decay: float
    schedule: str  # cosine | linear | exp | constant
    warmup: float  # share of training with a linear warm-up from lr / 10
    epochs: int
    average: list[float]  # shares of training whose epoch weights are averaged into the final ones


def cosine_lr(step: int, total: int) -> float:
    """Cosine decay factor from 1 at step 0 to 0 at `total`."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


def lr_factor(step: int, recipe: Recipe, steps_per_epoch: int) -> float:
    """Learning-rate multiplier at `step`: linear warm-up from 1/10, then the recipe's decay over the rest."""
    total = recipe.epochs * steps_per_epoch
    warmup = round(recipe.warmup * total)
    if step < warmup:
        return 0.1 + 0.9 * step / warmup
    step, total = step - warmup, total - warmup
    if recipe.schedule == "cosine":
        return cosine_lr(step, total)
    if recipe.schedule == "linear":
        return max(0.0, 1.0 - step / max(total, 1))
    if recipe.schedule == "exp":  # mixup ranking distillation: × exp(−0.01 · epoch)
        return math.exp(-0.01 * (step // steps_per_epoch))
    return 1.0


def make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimiser over `params`."""
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def averaged_epochs(recipe: Recipe) -> set[int]:
    """1-based epochs whose weights are averaged into the final ones (recipe.average as shares of training)."""
    return {max(1, round(share * recipe.epochs)) for share in recipe.average}


def rng_states(loader: DataLoader) -> dict:
    """Every random state the next epoch depends on, this device's CUDA generator included, as plain values.

    Generator states are bytes, not tensors: a checkpoint loaded with map_location=<a GPU> moves
    its tensors there, and torch.set_rng_state accepts only a CPU byte tensor.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(), "torch": torch.get_rng_state().numpy().tobytes(),
            # this process's device only: reading every GPU's state would open a context on each from every rank
            "cuda": [torch.cuda.get_rng_state().numpy().tobytes()] if torch.cuda.is_available() else [],
            "numpy": {"keys": keys.astype(np.uint32).tobytes(), "pos": int(pos), "has_gauss": int(has_gauss),
                      "cached": float(cached)},
            "loader": loader.generator.get_state().numpy().tobytes() if loader.generator is not None else None,
            "epoch": getattr(loader.sampler, "epoch", None)}  # an EpochSeeded sampler's next epoch


def _byte_tensor(state: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(state), dtype=torch.uint8)


def restore_rng_states(states: dict, loader: DataLoader) -> None:
    """Undo rng_states (the saved CUDA generator onto this process's device)."""
    random.setstate(states["python"])
    torch.set_rng_state(_byte_tensor(states["torch"]))
    cuda = states.get("cuda", [])
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state(_byte_tensor(cuda[0]))  # this process's device
    elif cuda or torch.cuda.is_available():
        log.warning("checkpoint saved %s a CUDA generator and this run has %s: CUDA random numbers after the "
                    "resume differ from an uninterrupted run", "with" if cuda else "without",
                    "one" if torch.cuda.is_available() else "none")
    n = states["numpy"]
    np.random.set_state(("MT19937", np.frombuffer(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if states["loader"] is not None:
        loader.generator.set_state(_byte_tensor(states["loader"]))
    if states.get("epoch") is not None:
        loader.sampler.epoch = states["epoch"]


def restore_scaler(scaler: torch.amp.GradScaler, state: dict) -> None:
    """Load a GradScaler's saved state; one saved without mixed precision (a CPU run's disabled scaler saves
    {}) leaves this scaler at its initial scale."""
    if state:
        scaler.load_state_dict(state)
    elif scaler.is_enabled():
        log.info("the checkpoint was saved without mixed precision: the loss scale starts afresh")


def has_unreached_parameters(net: nn.Module) -> bool:
    """Whether a forward pass may leave parameters without a gradient (a timm trunk's unused head)."""
    from pipeline.models.timm_trunk import TimmTrunk
    return any(isinstance(m, TimmTrunk) and m.pool != "model" for m in net.modules())


class TrainingStep(nn.Module):
    """Network and objective as one module, so that DDP synchronises the gradients of both (e.g. class proxies).

    The network may run under autocast; the objective always runs in float32 (similarity logits at a
    temperature of 0.01 lose about 0.1 in half precision), on the whole step's batch: under DDP the
    ranks' features are gathered with their gradients, so that batch-level losses (in-batch lists,
    similarity matrices, mixup) are those of one process with the same global batch.
    """

    def __init__(self, net: nn.Module, objective: nn.Module, teacher: nn.Module | None = None):
        super().__init__()
        self.net, self.objective, self.teacher = net, objective, teacher

    def forward(self, images, labels, items, teacher_images=None):
        q = self.net(images)
        # online: the batch's targets from the live teacher, (T, B, D) as cached targets are gathered
        live = () if teacher_images is None else (self.teacher(teacher_images, items),)
        with torch.autocast(q.device.type, enabled=False):
            return self.objective(*gather_batch(q.float(), labels, items, *live))


def fit(net: nn.Module, objective: nn.Module, loader: DataLoader, recipe: Recipe, device: torch.device,
        on_epoch: Callable[[dict], None] | None = None, checkpoint: Path | None = None,
        sync_batchnorm: bool = True, validate: Callable[[nn.Module], float] | None = None,
        validate_every: int = 0, teacher: nn.Module | None = None) -> list[dict]:
    """Train `net` to minimise `objective(net(images), labels, items)` with the recipe's optimiser and schedule.

    With `teacher` (online distillation, pipeline.train.online), the loader's batches carry a fourth element,
    the teacher's images, and the objective gets `teacher(those images)` as the batch's targets.

    With `checkpoint`, the full training state (weights, optimiser, schedule, weight average, random
    states, epoch) is saved atomically after every epoch, and a run that finds one resumes after its epoch.
    Under torchrun (a process group), gradients are averaged over the ranks with DDP, each rank
    training on its shard of every batch; only rank 0 writes the checkpoint. With `sync_batchnorm`, BatchNorm
    layers become SyncBatchNorm on CUDA (the global batch's statistics; the state dict keeps its keys).
    With `validate` (a network's validation mAP), every `validate_every`-th epoch's record holds `val_map` of
    the network at that epoch's end, and the last record that of the final network (averaged, BatchNorm
    statistics re-estimated): what `evaluate` scores. Only rank 0 validates.
    `on_epoch` gets every epoch's record as it ends (the last once the final network is made), and on a
    resume first each restored one, in order.
    Returns one record per epoch: {epoch, loss, seconds, lr (at the epoch's end)[, val_map]}.
    """
    # On CUDA: mixed precision and channels-last; on CPU both are off and the same code runs.
    amp = device.type == "cuda"
    if sync_batchnorm:
        net = synchronised_batchnorm(net, device, rank_and_world()[1])
    net.to(device, memory_format=torch.channels_last if amp else torch.preserve_format).train()
    place_objective(objective, device, device_budget(device))
    objective.train()
    if teacher is not None:
        teacher.to(device, memory_format=torch.channels_last if amp else torch.preserve_format)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    step = TrainingStep(net, objective, teacher)
    if rank_and_world()[1] > 1:
        # Cached teacher features are non-persistent buffers of the objective, memory-mapped from one file
        # that every rank reads: never broadcast them, neither at the start nor at every step.
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(step, cached_buffer_names(step))
        # timm trunks keep head parameters (e.g. ConvNeXt's head norm) that forward_features never reaches
        step = nn.parallel.DistributedDataParallel(step, broadcast_buffers=False,
                                                   find_unused_parameters=has_unreached_parameters(net))
    optimizer = make_optimizer([*net.parameters(), *objective.parameters()], recipe)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: lr_factor(i, recipe, len(loader)))
    to_average = averaged_epochs(recipe)
    average = torch.optim.swa_utils.AveragedModel(net, use_buffers=True) if to_average else None
    history: list[dict] = []
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        net.load_state_dict(state["net"])
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_scaler(scaler, state["scaler"])
        if average is not None:
            average.load_state_dict(state["average"])
        restore_rng_states(state["rng"], loader)
        history = state["history"]
        log.info("resuming from %s after epoch %d of %d", checkpoint, len(history), recipe.epochs)
        for record in history[:recipe.epochs - 1]:  # the restored epochs first: an epoch log continues the
            if on_epoch:                                # uninterrupted series (the last is told once final)
                on_epoch(record)
    for epoch in range(len(history), recipe.epochs):
        start, losses = time.perf_counter(), []
        for batch in tqdm(loader, desc=f"epoch {epoch + 1}/{recipe.epochs}", unit="batch", leave=False,
                          mininterval=1.0):
            with torch.autocast(device.type, enabled=amp):  # (images, labels, items[, teacher images])
                loss = step(*(t.to(device, non_blocking=True) for t in batch))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            losses.append(loss.detach())  # no .item(): on a GPU it would wait for every step
        if epoch + 1 in to_average:
            average.update_parameters(net)
        step_losses = torch.stack(losses).cpu().numpy().astype(np.float64)  # one transfer for the epoch
        record = {"epoch": epoch + 1, "loss": float(np.mean(step_losses)), "seconds": time.perf_counter() - start,
                  "lr": float(optimizer.param_groups[0]["lr"])}
        if validate is not None and validate_every and (epoch + 1) % validate_every == 0 \
                and epoch + 1 < recipe.epochs and is_main():
            record["val_map"] = validate(net)
        history.append(record)
        if checkpoint is not None and is_main():
            with atomic_path(checkpoint) as tmp:
                torch.save({"net": net.state_dict(), "objective": objective.state_dict(),
                            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                            "scaler": scaler.state_dict(), "average": average.state_dict() if average is not None else {},
                            "rng": rng_states(loader), "history": history}, tmp)
        barrier()
        if on_epoch and epoch + 1 < recipe.epochs:
            on_epoch(record)
    if average is not None:  # mixup ranking distillation: the final student averages the weights of the chosen epochs
        net.load_state_dict(average.module.state_dict())
    # Short runs from scratch leave BatchNorm running statistics lagging behind the weights
    # (MobileNetV3 uses momentum 0.01): re-estimate them over the training images once.
    # Under DDP each rank sees its shard: the ranks' estimates are averaged (equal shard sizes, so the
    # mean of the per-batch statistics is the one a single process would take over the same batches).
    torch.optim.swa_utils.update_bn(loader, net, device=device)
    average_batchnorm_statistics(net)
    if history and validate is not None and is_main():
        history[-1]["val_map"] = validate(net)
    if history and on_epoch:
        on_epoch(history[-1])
    return history
