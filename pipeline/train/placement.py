"""Where the objective's cached targets live while a student trains: on the GPU when they fit, else in host
memory (the memory-mapped target file, whose pages the ranks of a node share), each batch gathering its rows
there and moving only those."""
from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

# Share of a GPU's free memory the cached targets may take; the network, its activations and the
# optimiser need the rest.
DEVICE_SHARE = 0.5


def cached_buffer_names(module: nn.Module) -> list[str]:
    """Fully qualified names of the non-persistent buffers (the cached targets) of `module`."""
    return [f"{prefix}.{name}" if prefix else name for prefix, sub in module.named_modules()
            for name in sub._non_persistent_buffers_set]


def device_budget(device: torch.device) -> int | None:
    """Bytes of cached targets `device` may hold: a share of a GPU's free memory; None (no limit) for the CPU."""
    if device.type != "cuda":
        return None
    torch.cuda.empty_cache()  # a previous seed's freed blocks still count as used until released
    free, _ = torch.cuda.mem_get_info(device)
    return int(DEVICE_SHARE * free)


def place_objective(objective: nn.Module, device: torch.device, budget_bytes: int | None) -> bool:
    """Move `objective` to `device`, its cached targets too when they fit in `budget_bytes` (None: no limit);
    otherwise they stay where they are, never copied. Returns whether the targets moved."""
    cached = [(sub, name) for sub in objective.modules() for name in sub._non_persistent_buffers_set]
    tables = [sub._buffers[name] for sub, name in cached]
    size = sum(t.numel() * t.element_size() for t in tables if t is not None)
    moves = budget_bytes is None or size <= budget_bytes
    for sub, name in cached:  # out of the way of .to(), which would copy them
        sub._buffers[name] = None
    objective.to(device)
    for (sub, name), table in zip(cached, tables):
        sub._buffers[name] = table.to(device) if moves and table is not None else table
    if not moves:
        log.info("cached targets of %.1f GB stay in host memory (the GPU may take %.1f GB): each batch gathers its "
                 "rows there", size / 1e9, budget_bytes / 1e9)
    return moves
