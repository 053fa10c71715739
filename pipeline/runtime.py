"""Where and how reproducibly a stage runs: its torch device and its seeds."""
from __future__ import annotations

import os
import platform
import random

import numpy as np
import torch

from pipeline.determinism import deterministic_cuda_environment


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; deterministic kernels where torch has them."""
    deterministic_cuda_environment()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def device() -> torch.device:
    """This rank's device: its CUDA device under torchrun, cuda when available, CPU otherwise."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))


def describe_device(dev: torch.device) -> str:
    """A device in words: the GPU's name and CUDA version, or the CPU's architecture."""
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} (CUDA {torch.version.cuda})"
    return f"cpu ({platform.machine()})"

