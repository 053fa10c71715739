"""The single training loop: any network, any objective plug-in, CUDA when available."""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; deterministic kernels where torch has them."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def cosine_lr(step: int, total: int) -> float:
    """Cosine decay factor from 1 at step 0 to 0 at `total`."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


def fit(net: nn.Module, objective: nn.Module, loader: DataLoader, epochs: int, lr: float,
        weight_decay: float, device: torch.device,
        on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
    """Train `net` to minimise `objective(net(images), labels, rows)`; Adam + cosine schedule.

    Returns one record per epoch: {epoch, loss, seconds}.
    """
    net.to(device).train()
    objective.to(device).train()
    optimizer = torch.optim.Adam([*net.parameters(), *objective.parameters()], lr=lr, weight_decay=weight_decay)
    total_steps = epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_lr(step, total_steps))
    history = []
    for epoch in range(epochs):
        start, losses = time.perf_counter(), []
        for images, labels, rows in tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                                         leave=False, mininterval=1.0):
            images, labels, rows = (t.to(device, non_blocking=True) for t in (images, labels, rows))
            loss = objective(net(images), labels, rows)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - start}
        history.append(record)
        if on_epoch:
            on_epoch(record)
    # Short runs from scratch leave BatchNorm running statistics lagging behind the weights
    # (MobileNetV3 uses momentum 0.01): re-estimate them over the training images once.
    torch.optim.swa_utils.update_bn(loader, net, device=device)
    return history
