"""The GPU check: one command that brings the project up on a bare CUDA machine and measures it, every
figure and log written to a folder named on the command line, a one-screen summary at the end.

`benchmarks/gpu_check OUT` runs three parts, most valuable first, each a subprocess with its own time
budget (a part that overruns is stopped and reported, and the next one runs):
1. `cuda_tests` (170 s): `pytest -m cuda tests/test_cuda.py`: the real stages on the GPU (prepare, teacher,
   extraction with workers, whitening, exact mining, training with mixed precision and BatchNorm
   re-estimation, evaluation with GPU ranking) against the CPU's mAP; a CPU checkpoint resumed on the
   GPU; bit-identical resume; GPU ranks and exact-mining lists against CPU ones; targets in host memory;
2. `ddp_one_gpu` (50 s): two DDP ranks sharing the one GPU (NCCL refuses two ranks on one device, so gloo
   with CUDA tensors), SyncBatchNorm included, against one process with the whole batch;
3. `timings` (120 s): the cached-feature epoch against the teacher's forward, throughput with and
   without mixed precision and channels-last, the extract stage against the description alone, and exact
   mining of 1.6M × 512 rows (extrapolated from what its budget allows).

Made for a machine with PyTorch, torchvision, h5py, numpy, typer, tqdm, timm and pytest and no network:
`benchmarks/gpu_check --fetch-wheels` (here, with network) saves the few other wheels it needs in
benchmarks/wheels/ (git-ignored, about 21 MiB: pydantic and faiss-cpu, faiss-gpu's wheel being too large
to travel), and `benchmarks/gpu_check OUT` there installs them into a temporary folder first. DVCLive is
not needed: training logs its epochs as lines without it. FAISS on GPUs is then "not available" and its
test skipped; GPU mining runs through torch (`mine.index: exact`). `--dry-run` runs the same parts with
CUDA absent, on the CPU at small sizes, to check the script itself.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch
import typer

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / "benchmarks" / "wheels"
WHEEL_LIMIT_MIB = 60
# Distributions a bare CUDA machine lacks (faiss-cpu: faiss-gpu's CPU twin, at faiss-gpu's pinned version).
CARRIED = {"pydantic": "pydantic", "pydantic-core": "pydantic_core", "annotated-types": "annotated_types",
           "typing-inspection": "typing_inspection", "faiss-cpu": "faiss"}
BUDGETS = {"cuda_tests": 170, "ddp_one_gpu": 50, "timings": 120}  # seconds, in the order the parts run


def pinned_versions() -> dict[str, str]:
    """name==version of every carried distribution: faiss-cpu at pyproject.toml's faiss-gpu pin (faiss-gpu need
    not be installed here), the others as installed here."""
    from importlib import metadata
    pin = re.search(r'"faiss-gpu==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    return {name: pin.group(1) if name == "faiss-cpu" else metadata.version(name) for name in CARRIED}


def fetch_wheels(python: str) -> None:
    """Download the carried wheels for CPython `python` on manylinux x86-64 into benchmarks/wheels/."""
    WHEELS.mkdir(exist_ok=True)
    platforms = [arg for n in (17, 27, 28, 34) for arg in ("--platform", f"manylinux_2_{n}_x86_64")]
    for name, version in pinned_versions().items():
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--python-version", python, "--implementation", "cp", *platforms, "--platform",
                        "manylinux2014_x86_64", "-d", str(WHEELS), f"{name}=={version}"], check=True)
    size = sum(f.stat().st_size for f in WHEELS.glob("*.whl")) / 2 ** 20
    print(f"{len(list(WHEELS.glob('*.whl')))} wheels, {size:.1f} MiB in {WHEELS}")
    if size > WHEEL_LIMIT_MIB:
        raise typer.Exit(f"wheels take {size:.1f} MiB, over the {WHEEL_LIMIT_MIB} MiB that travel") from None


def cuda_tests(out: Path, dry_run: bool) -> dict:
    """`pytest -m cuda`: its exit status, its summary line and the skip reasons (log: OUT/cuda_tests.log)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    # -o addopts=: the project's parallel run (pytest-xdist) is not needed here
    args = [sys.executable, "-m", "pytest", "-o", "addopts=", "-m", "cuda", "tests/test_cuda.py", "-q", "-rs",
            "-p", "no:cacheprovider", "--basetemp", str(out / "cuda_tests-tmp")]
    if dry_run:  # the test bodies on the CPU; the demo pipeline is left out (minutes on a small CPU)
        env["RDISTILL_CUDA_TESTS_ON_CPU"] = "1"
        args += ["-k", "not demo"]
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    (out / "cuda_tests.log").write_text(result.stdout + result.stderr)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return {"passed": result.returncode == 0, "summary": lines[-1] if lines else "",
            "skipped": [line for line in lines if line.startswith("SKIPPED")]}


def ddp_rank(rank: int, world: int, init_file: str, out: str, device: str) -> None:
    """One gloo rank of tests.train.test_distributed's BatchNorm network, on the one GPU, trained one step."""
    import torch.distributed as dist
    from pipeline.params import Recipe
    from pipeline.train.loop import fit
    from tests.train.test_distributed import BATCH, setup
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    net, objective, loader = setup("fitnet", rank, world, batch_norm=True)
    try:
        history = fit(net, objective, loader, Recipe(optimizer="sgd", lr=0.5, momentum=0.0, weight_decay=0.0,
                                                     schedule="constant", epochs=1, batch_size=BATCH),
                      torch.device(device))
        kinds = sorted({type(m).__name__ for m in net.modules() if "BatchNorm" in type(m).__name__})
        torch.save({"loss": history[0]["loss"], "kinds": kinds}, f"{out}.{rank}")
    except Exception as exc:  # reported, not raised: what gloo cannot do with CUDA tensors is a finding
        torch.save({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}, f"{out}.{rank}")
    dist.destroy_process_group()


def ddp_one_gpu(out: Path, dry_run: bool) -> dict:
    """Two DDP ranks on one device (gloo; SyncBatchNorm on CUDA) against one process with the whole batch."""
    import torch.multiprocessing as mp
    from tests.train.test_distributed import one_step
    device = "cpu" if dry_run else "cuda:0"
    scratch = out / "ddp_one_gpu-tmp"
    scratch.mkdir(exist_ok=True)
    mp.spawn(ddp_rank, args=(2, str(scratch / "init"), str(scratch / "ddp"), device), nprocs=2, join=True)
    one_step(0, 1, "", str(scratch / "single"), ["fitnet"], batch_norm=True)  # one CPU process, the whole batch
    single = torch.load(scratch / "single.0")["fitnet"]["loss"]
    ranks = [torch.load(scratch / f"ddp.{rank}") for rank in (0, 1)]
    errors = [r["error"] for r in ranks if "error" in r]
    if errors:
        return {"passed": False, "not_covered": errors[0], "device": device}
    # On the GPU SyncBatchNorm normalises with the global batch: one process's loss (float32 on two devices)
    same = all(abs(r["loss"] - single) <= 1e-3 * abs(single) for r in ranks)
    return {"passed": same or dry_run, "losses": [r["loss"] for r in ranks], "single_process_loss": single,
            "batchnorm": ranks[0]["kinds"], "device": device}


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


def timings(out: Path, dry_run: bool) -> dict:
    """The cached epoch, throughput, extraction and exact mining on the device (sizes cut for a dry run)."""
    from benchmarks import extraction, training
    device = torch.device("cpu" if dry_run else "cuda")
    # The D3still setting: teacher ResNet-50 @ 256, student ResNet-18 @ 64.
    sizes = dict(images=64, batch=16, teacher_size=64, student_size=32) if dry_run else \
        dict(images=1024, batch=128, teacher_size=256, student_size=64)
    timing = training.main(**sizes, workers=[0] if dry_run else [0, 4], cache_mb=2048, device=str(device),
                           name="gpu-training")
    steps = 2 if dry_run else 10
    throughput = {}
    for label, arch, size, train in (("teacher_forward", "resnet50", sizes["teacher_size"], False),
                                     ("student_step", "resnet18", sizes["student_size"], True)):
        for amp in (False, True):
            key = f"{label} amp={'on' if amp else 'off'} channels_last={'on' if amp else 'off'}"
            throughput[key] = images_per_second(arch, size, sizes["batch"], train, amp, amp, device, steps)
    extracted = extraction.main(**(dict(images=32, arch="resnet18", image_size=64, batch=16, workers=[0]) if dry_run else
                                   dict(images=2048, arch="resnet50", image_size=256, batch=128,
                                        workers=[min(8, os.cpu_count() or 1)])), name="gpu-extraction")
    mined = exact_mining(**(dict(rows=20_000, dim=64, k=16, batch=1024) if dry_run else
                            dict(rows=1_600_000, dim=512, k=64, batch=1024)), device=device, budget_s=30)
    return {"passed": True, "faiss_on_gpus": faiss_on_gpus(), "exact_mining": mined,
            "extraction_vs_forward": extracted["ratio"], "extraction_images_per_s": extracted["stage_images_per_s"],
            "forward_images_per_s": extracted["forward_images_per_s"],
            "epoch_vs_student_step": timing["epoch_vs_student_step"],
            "speedup_share_of_limit": timing["speedup_share_of_limit"], "speedup_limit": timing["speedup_limit"],
            "teacher_forward_s": timing["teacher_forward_s"], "student_step_s": timing["student_step_s"],
            "cached_step_s_by_workers": timing["cached_step_s_by_workers"], "images_per_second": throughput,
            "sizes": sizes}


PARTS = {"cuda_tests": cuda_tests, "ddp_one_gpu": ddp_one_gpu, "timings": timings}


def run_part(name: str, out: Path, dry_run: bool) -> dict:
    """One part in its own process, stopped at its budget: its figures, status and seconds (log: OUT/NAME.log)."""
    start = time.perf_counter()
    args = [sys.executable, "-m", "benchmarks.gpu_check", str(out), "--part", name] + (["--dry-run"] if dry_run else [])
    env = {**os.environ, "RDISTILL_BENCHMARK_RESULTS": str(out)}
    with open(out / f"{name}.log", "w") as log:
        try:
            code = subprocess.run(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=BUDGETS[name]).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    seconds = time.perf_counter() - start
    found = out / f"{name}.json"
    figures = json.loads(found.read_text()) if found.is_file() and code != "timeout" else {}
    status = "passed" if figures.get("passed") else ("over its budget" if code == "timeout" else "failed")
    return {"status": status, "seconds": round(seconds, 1), "budget_s": BUDGETS[name], "exit": code, **figures}


def summary(results: dict, seconds: float) -> str:
    """One screen: each part's status and time, and the figures a reader looks for first."""
    lines = [f"GPU check: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU (dry run)'}, "
             f"{seconds:.0f} s in all"]
    for name, part in results.items():
        lines.append(f"  {name:12s} {part['status']:16s} {part['seconds']:6.1f} s of {part['budget_s']} s")
    tests = results.get("cuda_tests", {})
    if tests.get("summary"):
        lines.append(f"  tests: {tests['summary']}")
    ddp = results.get("ddp_one_gpu", {})
    if ddp.get("not_covered"):
        lines.append(f"  two ranks on one GPU not covered: {ddp['not_covered']}")
    elif "losses" in ddp:
        lines.append(f"  two ranks: loss {ddp['losses'][0]:.5f} vs one process {ddp['single_process_loss']:.5f} "
                     f"({', '.join(ddp['batchnorm'])})")
    t = results.get("timings", {})
    if "epoch_vs_student_step" in t:
        lines.append(f"  cached epoch / student steps {t['epoch_vs_student_step']:.2f}; speed-up {t['speedup_share_of_limit']:.2f}"
                     f" of its limit; extraction / forward {t['extraction_vs_forward']:.2f}; mining "
                     f"{t['exact_mining']['rows']:,} rows {t['exact_mining']['seconds_all_rows']:.0f} s; FAISS on GPUs {t['faiss_on_gpus']}")
    return "\n".join(lines)


def main(out: Path = typer.Argument(None, help="Folder for gpu.json, every part's figures and logs."),
         dry_run: bool = typer.Option(False, "--dry-run", help="CUDA absent: the same parts on the CPU, small sizes."),
         fetch: bool = typer.Option(False, "--fetch-wheels", help="Download the carried wheels and stop."),
         python: str = typer.Option("3.12", help="--fetch-wheels: the GPU machine's Python version."),
         part: str = typer.Option(None, "--part", hidden=True, help="Run one part (the check runs each so).")) -> None:
    """Run every part within its budget; write OUT/gpu.json and print a summary."""
    if fetch:
        fetch_wheels(python)
        return
    if out is None:
        raise typer.BadParameter("name the folder for the results: benchmarks/gpu_check OUT")
    out.mkdir(parents=True, exist_ok=True)
    if part is not None:
        figures = PARTS[part](out.resolve(), dry_run)
        (out / f"{part}.json").write_text(json.dumps(figures, indent=2) + "\n")
        return
    if not dry_run and not torch.cuda.is_available():
        raise typer.Exit("gpu_check: torch sees no CUDA GPU here (use --dry-run to check the script on a CPU)") from None
    start = time.perf_counter()
    results = {name: run_part(name, out.resolve(), dry_run) for name in PARTS}
    seconds = time.perf_counter() - start
    (out / "gpu.json").write_text(json.dumps({"dry_run": dry_run, "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                              "device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                                              else "cpu", "seconds": seconds, "parts": results}, indent=2) + "\n")
    print(summary(results, seconds))
    if not all(r["status"] == "passed" for r in results.values()):
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
