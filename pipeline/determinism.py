"""What CUDA needs, before torch's first CUDA call, for deterministic runs: cuBLAS's fixed workspace.
Torch-free, so that the command line sets it before any stage imports torch."""
from __future__ import annotations

import os

CUBLAS_WORKSPACE = ":4096:8"  # the setting CUDA's reproducibility notes give for deterministic cuBLAS


def deterministic_cuda_environment() -> None:
    """Ask cuBLAS for its deterministic workspace unless the user set one. cuBLAS reads it when it starts:
    without it, torch's deterministic mode falls back to nondeterministic kernels with a warning."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
