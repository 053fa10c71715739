"""What every benchmark shares: the machine's description, timing, peak memory and the JSON it writes."""
from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path

import torch

from pipeline.provenance import library_versions

# benchmarks/results, or the folder a caller names (benchmarks/gpu_check writes everything to its OUT folder)
RESULTS = Path(os.environ.get("RDISTILL_BENCHMARK_RESULTS") or Path(__file__).resolve().parent / "results")


def machine() -> dict:
    """CPU, cores, GPUs and library versions of this run."""
    import faiss
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(), "gpu": gpu, "faiss_gpus": faiss.get_num_gpus(), "python": platform.python_version(),
            "versions": library_versions()}


def synchronize() -> None:
    """Wait for queued CUDA work (a no-op without CUDA), so that a clock read after it counts that work."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn: Callable[..., object], *args) -> float:
    """Wall-clock seconds of one call fn(*args), its CUDA work included."""
    synchronize()
    start = time.perf_counter()
    fn(*args)
    synchronize()
    return time.perf_counter() - start


def best_seconds(fn: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of `repeat` timed calls of fn (after one warm-up call)."""
    fn()
    return min(timed(fn) for _ in range(repeat))


def peak_rss_mb() -> float:
    """Peak resident memory of this process since start or the last reset_peak_rss(), in MiB (Linux)."""
    try:
        status = Path("/proc/self/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident memory of this process now, in MiB (Linux)."""
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")) / 1024


def reset_peak_rss() -> None:
    """Restart the peak-memory count from the current resident size (Linux: /proc/self/clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def write_result(name: str, settings: dict, figures: dict, targets: dict) -> Path:
    """benchmarks/results/<name>.json with the machine, settings, figures and each target's verdict."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(),
                                "settings": settings, "figures": figures, "targets": targets}, indent=2) + "\n")
    print(json.dumps({"benchmark": name, "figures": figures, "targets": targets}, indent=2))
    return path
