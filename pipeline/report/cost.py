"""What a model costs to describe one image: parameters, FLOPs over every scale, and time on this machine."""
from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pipeline.features.extract import multiscale_descriptor


@torch.inference_mode()
def model_cost(net: nn.Module, image_size: int, scales: Sequence[float], batch: int = 16, repeats: int = 5) -> dict:
    """Parameters (millions), GFLOPs per image (torch's FLOP counter, one image at every scale, as the
    descriptor is computed: GeM, Radenović et al., TPAMI 2018) and ms per image (the median of `repeats` timed batches, CPU)."""
    net = net.eval().cpu()
    one = torch.randn(1, 3, image_size, image_size)
    with FlopCounterMode(display=False) as counter:
        multiscale_descriptor(net, one, scales)
    images = torch.randn(batch, 3, image_size, image_size)
    multiscale_descriptor(net, images, scales)  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        multiscale_descriptor(net, images, scales)
        seconds.append(time.perf_counter() - start)
    return {"params_m": sum(p.numel() for p in net.parameters()) / 1e6, "gflops": counter.get_total_flops() / 1e9,
            "ms_per_image": 1000 * statistics.median(seconds) / batch}
