"""The GPU check: the CUDA tests and the D3still timings on one CUDA GPU, written to benchmarks/results/gpu.json.

Made for a machine with a CUDA GPU and no network where PyTorch, torchvision, h5py, numpy, typer,
tqdm and pytest are installed: `benchmarks/gpu_check --fetch-wheels` (here, with network) saves the
few other wheels it needs in benchmarks/wheels/ (git-ignored, about 21 MiB), which travel with a copy
of the repository; `benchmarks/gpu_check` there installs them into a temporary folder and runs
everything below. `--dry-run` runs the same steps with CUDA absent, on the CPU at small sizes, to
check the script itself. faiss-cpu stands in for faiss-gpu there (faiss-gpu's wheel is too large to travel), so
FAISS on GPUs is reported "not available" and its test skipped; mining on the GPU is timed through the torch
path (`mine.index: exact`), which needs no FAISS GPU build. Extraction is timed through the real `extract`
stage (JPEG files decoded by DataLoader workers on the machine's cores) against the description alone.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import torch
import typer

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / "benchmarks" / "wheels"
WHEEL_LIMIT_MIB = 60
# Distributions a bare CUDA machine lacks, at the versions this environment runs (faiss-cpu: faiss-gpu's CPU twin).
CARRIED = {"pydantic": "pydantic", "pydantic-core": "pydantic_core", "annotated-types": "annotated_types",
           "typing-inspection": "typing_inspection", "faiss-cpu": "faiss"}


def carried_versions() -> dict[str, str]:
    """name==version of every carried distribution, as installed here."""
    versions = {}
    for name in CARRIED:
        source = "faiss-gpu" if name == "faiss-cpu" else name
        versions[name] = metadata.version(source)
    return versions


def fetch_wheels(python: str) -> None:
    """Download the carried wheels for CPython `python` on manylinux x86-64 into benchmarks/wheels/."""
    WHEELS.mkdir(exist_ok=True)
    platforms = [arg for n in (17, 27, 28, 34) for arg in ("--platform", f"manylinux_2_{n}_x86_64")]
    for name, version in carried_versions().items():
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--python-version", python, "--implementation", "cp", *platforms, "--platform",
                        "manylinux2014_x86_64", "-d", str(WHEELS), f"{name}=={version}"], check=True)
    size = sum(f.stat().st_size for f in WHEELS.glob("*.whl")) / 2 ** 20
    print(f"{len(list(WHEELS.glob('*.whl')))} wheels, {size:.1f} MiB in {WHEELS}")
    if size > WHEEL_LIMIT_MIB:
        raise typer.Exit(f"wheels take {size:.1f} MiB, over the {WHEEL_LIMIT_MIB} MiB that travel") from None


def run_cuda_tests(dry_run: bool, log: Path) -> dict:
    """`pytest -m cuda`: its exit status, its summary line and the skip reasons."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    # -o addopts=: the project's parallel run (pytest-xdist) is not installed on the GPU machine, nor needed here
    args = [sys.executable, "-m", "pytest", "-o", "addopts=", "-m", "cuda", "tests/test_cuda.py", "-q", "-rs",
            "-p", "no:cacheprovider"]
    if dry_run:  # the test bodies on the CPU; the demo pipeline is left out (minutes on a small CPU)
        env["RDISTILL_CUDA_TESTS_ON_CPU"] = "1"
        args += ["-k", "not demo"]
    start = time.perf_counter()
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    log.write_text(result.stdout + result.stderr)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return {"exit_status": result.returncode, "summary": lines[-1] if lines else "",
            "skipped": [line for line in lines if line.startswith("SKIPPED")], "seconds": time.perf_counter() - start,
            "log": str(log.relative_to(ROOT))}


def images_per_second(arch: str, size: int, batch: int, train: bool, amp: bool, channels_last: bool,
                      device: torch.device, steps: int) -> float:
    """Throughput of a torchvision backbone + GeM at `size` px: training steps (Adam) or no-grad forwards."""
    from pipeline.models.backbones import create
    from benchmarks.common import synchronize
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = create(arch, None).to(device, memory_format=layout).train(train)
    x = torch.randn(batch, 3, size, size, device=device).to(memory_format=layout)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and train)

    def step():
        with torch.set_grad_enabled(train), torch.autocast(device.type, enabled=amp):
            out = net(x)
        if train:
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(out.float().pow(2).mean()).backward()
            scaler.step(optimizer)
            scaler.update()

    for _ in range(3):  # warm-up: cuDNN's algorithm search, allocator
        step()
    synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    return batch * steps / (time.perf_counter() - start)


def exact_mining(rows: int, dim: int, k: int, batch: int, device: torch.device, budget_s: float) -> dict:
    """Seconds to mine the top k of every one of `rows` clustered unit rows with torch's exact search
    (pipeline.index.exact_torch, as `mine` runs it); past `budget_s` the rest is extrapolated from the
    query batches done."""
    from benchmarks.common import synchronize
    from benchmarks.mining import clustered_features
    from pipeline.index.exact_torch import ExactSearch
    feats = clustered_features(rows, dim, clusters=max(1, rows // 50))
    start = time.perf_counter()
    search = ExactSearch(feats, device)
    done = 0
    while done < rows and time.perf_counter() - start < budget_s:
        search.search(done, min(done + batch, rows), k)
        done = min(done + batch, rows)
    synchronize()
    seconds = time.perf_counter() - start
    return {"rows": rows, "dim": dim, "k": k, "query_batch": batch, "queries_mined": done, "seconds": seconds,
            "seconds_all_rows": seconds * rows / done, "extrapolated": done < rows,
            "gallery_on_device": search.gallery.device.type == device.type}


def faiss_on_gpus() -> str:
    """FAISS's GPU support here, in words."""
    import faiss
    gpus = faiss.get_num_gpus()
    return f"available ({gpus} GPUs)" if gpus else "not available (this FAISS build has no GPU support)"


def main(dry_run: bool = typer.Option(False, "--dry-run", help="CUDA absent: the same steps on the CPU, small sizes."),
         fetch: bool = typer.Option(False, "--fetch-wheels", help="Download the carried wheels and stop."),
         python: str = typer.Option("3.12", help="--fetch-wheels: the GPU machine's Python version.")) -> None:
    """Run the CUDA tests and the GPU timings; write benchmarks/results/gpu.json."""
    if fetch:
        fetch_wheels(python)
        return
    if not dry_run and not torch.cuda.is_available():
        raise typer.Exit("gpu_check: torch sees no CUDA GPU here (use --dry-run to check the script on a CPU)") from None
    from benchmarks import training
    from benchmarks.common import RESULTS, write_result
    start = time.perf_counter()
    RESULTS.mkdir(exist_ok=True)
    device = torch.device("cpu" if dry_run else "cuda")
    tests = run_cuda_tests(dry_run, RESULTS / "gpu-tests.log")
    print(json.dumps({"cuda_tests": tests}, indent=2), flush=True)
    # The D3still setting (METHODS §5): teacher ResNet-50 @ 256, student ResNet-18 @ 64; sizes cut for a dry run.
    sizes = dict(images=64, batch=16, teacher_size=64, student_size=32) if dry_run else \
        dict(images=2048, batch=128, teacher_size=256, student_size=64)
    timing = training.main(**sizes, workers=[0, 4] if not dry_run else [0], cache_mb=2048, device=str(device),
                           name="gpu-training")
    steps = 2 if dry_run else 20
    throughput = {}
    for label, arch, size, train in (("teacher_forward", "resnet50", sizes["teacher_size"], False),
                                     ("student_step", "resnet18", sizes["student_size"], True)):
        for amp in (False, True):
            for channels_last in (False, True):
                key = f"{label} amp={'on' if amp else 'off'} channels_last={'on' if channels_last else 'off'}"
                throughput[key] = images_per_second(arch, size, sizes["batch"], train, amp, channels_last,
                                                    device, steps)
    from benchmarks import extraction
    extracted = extraction.main(**(dict(images=32, arch="resnet18", image_size=64, batch=16, workers=[0]) if dry_run else
                                   dict(images=4096, arch="resnet50", image_size=256, batch=128,
                                        workers=[os.cpu_count() or 1])), name="gpu-extraction")
    mined = exact_mining(**(dict(rows=20_000, dim=64, k=16, batch=1024) if dry_run else
                            dict(rows=1_600_000, dim=512, k=64, batch=1024)), device=device, budget_s=240)
    print(json.dumps({"extraction": extracted, "exact_mining": mined}, indent=2), flush=True)
    seconds = time.perf_counter() - start
    figures = {"cuda_tests": tests, "faiss_on_gpus": faiss_on_gpus(), "exact_mining": mined,
               "extraction_vs_forward": extracted["ratio"], "extraction_images_per_s": extracted["stage_images_per_s"],
               "forward_images_per_s": extracted["forward_images_per_s"], "epoch_vs_student_step": timing["epoch_vs_student_step"],
               "speedup_share_of_limit": timing["speedup_share_of_limit"], "speedup_limit": timing["speedup_limit"],
               "teacher_forward_s": timing["teacher_forward_s"], "student_step_s": timing["student_step_s"],
               "cached_step_s_by_workers": timing["cached_step_s_by_workers"],
               "images_per_second": throughput, "seconds": seconds}
    write_result("gpu", {"dry_run": dry_run, "device": str(device), **sizes, "throughput_steps": steps}, figures,
                 {"cuda tests pass": tests["exit_status"] == 0,
                  "cached epoch <= 1.1 x student step": timing["epoch_vs_student_step"] <= 1.1,
                  "speedup >= 0.9 x limit": timing["speedup_share_of_limit"] >= 0.9,
                  "extraction >= 0.9 x forward": extracted["ratio"] >= 0.9,
                  "mining every row in under 10 minutes": mined["seconds_all_rows"] < 600,
                  "under 12 minutes": seconds < 720})
    if tests["exit_status"] != 0:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
