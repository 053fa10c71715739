"""The machine and environment that cached features depend on, read without importing torch: library
versions, Python, the image decoder, the CPU (model and the vector instructions that pick torch's and
MKL's kernels), the variables that override those choices, and the GPUs' names."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from pipeline.provenance import environment

# Instruction sets that decide which kernels torch, MKL and oneDNN run (and so the last bits of a feature).
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                "amx_tile", "amx_bf16", "asimd", "sve")
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR",
                    "CUDA_VISIBLE_DEVICES")


def cpu_description(cpuinfo: str) -> dict:
    """The CPU model and its vector instruction sets, from /proc/cpuinfo's text."""
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {"model": fields.get("model name") or fields.get("CPU part") or platform.processor() or "unknown",
            "vector_flags": [f for f in VECTOR_FLAGS if f in flags]}


def gpu_names() -> list[str]:
    """The GPUs' names as the NVIDIA driver reports them (none without the driver)."""
    try:
        found = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                               text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in found.stdout.splitlines() if line.strip()] if found.returncode == 0 else []


def machine_environment() -> dict:
    """Everything besides code, weights and data that shapes a computed feature on this machine."""
    cpuinfo = Path("/proc/cpuinfo")
    return {**environment(platform.machine()), "cpu": cpu_description(cpuinfo.read_text() if cpuinfo.is_file() else ""),
            "gpus": gpu_names(), "kernel_variables": {k: os.environ[k] for k in KERNEL_VARIABLES if k in os.environ}}
