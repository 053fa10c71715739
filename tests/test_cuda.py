"""CUDA paths on a GPU: resume, evaluation, FAISS indexes and a short demo student (`pytest -m cuda`).

Skipped, with the reason, where torch sees no CUDA device; benchmarks/gpu_check runs them on a GPU machine.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS, before its first use

# RDISTILL_CUDA_TESTS_ON_CPU=1 (benchmarks/gpu_check --dry-run) runs the same bodies on the CPU, to check them
# where no GPU is at hand; the GPU-only comparisons then compare the CPU with itself.
ON_CPU = os.environ.get("RDISTILL_CUDA_TESTS_ON_CPU") == "1"
DEVICE = torch.device("cpu" if ON_CPU else "cuda")
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not (ON_CPU or torch.cuda.is_available()), reason="needs a CUDA GPU")]
PROJECT = Path(__file__).resolve().parents[1]


def train_resnet(checkpoint: Path, stop_after: int | None = None, device: torch.device = DEVICE) -> dict:
    """4 epochs of a ResNet-18 student under mixup-AP (CUDA random numbers every step), AMP on."""
    from torch.utils.data import DataLoader, TensorDataset

    from pipeline.models.backbones import create
    from pipeline.params import Recipe, TrainParams
    from pipeline.runtime import seed_everything
    from pipeline.train.loop import fit
    from pipeline.train.objectives import CachedTargets, build_objective

    seed_everything(0)
    n, dim = 64, 32
    data_rng = torch.Generator().manual_seed(1)
    images = torch.randn(n, 3, 32, 32, generator=data_rng)
    teacher = torch.nn.functional.normalize(torch.randn(1, n, dim, generator=data_rng), dim=-1)
    net = create("resnet18", dim)
    objective = build_objective("mixup_ap", TrainParams().mixup_ap, CachedTargets(teacher, None, 0, dim))
    loader = DataLoader(TensorDataset(images, torch.zeros(n, dtype=torch.long), torch.arange(n)), batch_size=16,
                        shuffle=True, generator=torch.Generator().manual_seed(0), drop_last=True)

    def stop(record):
        if stop_after is not None and record["epoch"] == stop_after:
            raise KeyboardInterrupt

    try:
        fit(net, objective, loader, Recipe(epochs=4, batch_size=16), device, on_epoch=stop,
            checkpoint=checkpoint)
    except KeyboardInterrupt:
        return {}
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def test_resume_on_gpu_gives_the_uninterrupted_weights_bit_for_bit(tmp_path):
    whole = train_resnet(tmp_path / "whole.pt")
    assert train_resnet(tmp_path / "resumed.pt", stop_after=2) == {}
    resumed = train_resnet(tmp_path / "resumed.pt")
    assert whole.keys() == resumed.keys()
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


def test_a_checkpoint_saved_on_the_cpu_resumes_on_the_gpu(tmp_path):
    # the CPU run's GradScaler is disabled and saves {}: loading that into the GPU's enabled one raised
    assert train_resnet(tmp_path / "cpu.pt", stop_after=2, device=torch.device("cpu")) == {}
    resumed = train_resnet(tmp_path / "cpu.pt")
    assert resumed and all(torch.isfinite(v.float()).all() for v in resumed.values())


def test_ranks_on_the_gpu_equal_the_cpu_ones_for_a_5000_image_gallery():
    from pipeline.data.rows import ArrayRows
    from pipeline.evaluate.metrics import ap_from_ranks
    from pipeline.evaluate.ranks import positive_ranks
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((50, 64))
    labels = rng.integers(0, 50, 5000)
    db = centres[labels] + rng.standard_normal((5000, 64))
    db = (db / np.linalg.norm(db, axis=1, keepdims=True)).astype(np.float32)
    q_labels = np.arange(50)
    q = centres[q_labels] + rng.standard_normal((50, 64))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    settings = [[(np.flatnonzero(labels == c), np.zeros(0, np.int64))] for c in q_labels]
    gpu = positive_ranks(q, ArrayRows(db, block=1024), settings, device=DEVICE)
    cpu = positive_ranks(q, ArrayRows(db, block=1024), settings, device=None)
    gpu_map = np.mean([ap_from_ranks(r[0]) for r in gpu])
    cpu_map = np.mean([ap_from_ranks(r[0]) for r in cpu])
    assert gpu_map == pytest.approx(cpu_map, abs=1e-4)
    # Float sums differ in the last bits, so a positive may swap with an item whose similarity is within
    # rounding of its own, and no further: each rank lies between the ranks that exact similarities allow.
    exact = q.astype(np.float64) @ db.astype(np.float64).T
    tolerance = 2 * 64 * 2.0**-24  # two float32 dot products of unit 64-d vectors, D·u each
    for i, (a, b) in enumerate(zip(gpu, cpu)):
        s_p = exact[i, settings[i][0][0]]
        lowest = np.sort((exact[i][None, :] > s_p[:, None] + tolerance).sum(axis=1))
        highest = np.sort((exact[i][None, :] >= s_p[:, None] - tolerance).sum(axis=1) - 1)
        for ranks in (a[0], b[0]):
            assert (lowest <= ranks).all() and (ranks <= highest).all(), i


def test_exact_mining_on_the_gpu_finds_the_lists_of_a_cpu_exact_search():
    from benchmarks.mining import clustered_features
    from pipeline.index.exact_torch import ExactSearch
    from pipeline.index.search import dot_rounding_bound, recall_with_ties

    feats = clustered_features(6000, 64, clusters=120)
    k, sample = 16, np.arange(0, 6000, 30)
    sims, ids = ExactSearch(feats, DEVICE).search(0, 6000, k)
    exact = feats[sample].astype(np.float64) @ feats.astype(np.float64).T
    exact[np.arange(len(sample)), sample] = -np.inf  # a row is not its own neighbour
    exact_sims = -np.sort(-exact, axis=1)[:, :k]
    found = np.take_along_axis(feats[sample].astype(np.float64) @ feats.astype(np.float64).T, ids[sample], axis=1)
    assert not (ids[sample] == sample[:, None]).any()
    assert recall_with_ties(found, exact_sims, dot_rounding_bound(feats[sample], feats)) == 1.0


def test_faiss_indexes_go_to_the_gpu_and_take_their_nprobe():
    faiss = pytest.importorskip("faiss")
    if faiss.get_num_gpus() == 0:
        pytest.skip("this FAISS build sees no GPU (faiss-cpu)")
    from pipeline.data.rows import ArrayRows
    from pipeline.index.search import neighbours_of, set_nprobe, to_gpu_if_available, new_index
    from pipeline.index.stream import build_streamed_index, exact_neighbours
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20000, 128)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = set_nprobe(build_streamed_index(ArrayRows(x), "IVF64,Flat"), 64)
    assert "Gpu" in type(index).__name__ or "Replicas" in type(index).__name__
    _, ids = neighbours_of(index, x, 0, 500, k=10)  # every list visited: exact
    assert (ids == exact_neighbours(ArrayRows(x), np.arange(500), 10)).mean() > 0.99
    pq = new_index(128, "IVF64,PQ64")
    pq.train(x)
    assert "Gpu" in type(to_gpu_if_available(pq)).__name__  # float16 lookup tables: 64 bytes fit


def run_stage(root: Path, *args: str, cpu: bool = False) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT), os.environ.get("PYTHONPATH", "")])}
    if cpu or ON_CPU:
        env["CUDA_VISIBLE_DEVICES"] = ""
    result = subprocess.run([sys.executable, "-m", "stages.cli", *args], cwd=root, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stderr[-3000:]}"


def test_a_two_epoch_demo_student_on_gpu_reaches_the_cpu_runs_map(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("faiss")
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["teachers"] = {"resnet50": params["teachers"]["resnet50"]}
    params["students"] = {"csd": {"method": "csd", "teacher": "resnet50", "recipe": {"epochs": 2}}}
    params["ensembles"] = {}
    params["train"]["seeds"] = [0]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stage in (["prepare"], ["teacher", "resnet50"], ["extract", "resnet50"], ["whiten", "resnet50"],
                  ["mine", "resnet50"], ["train", "csd"], ["evaluate", "csd"]):
        run_stage(tmp_path, *stage)
    gpu = json.loads((tmp_path / "metrics/eval/csd.json").read_text())
    shutil.rmtree(tmp_path / "data/students")
    run_stage(tmp_path, "train", "csd", cpu=True)
    run_stage(tmp_path, "evaluate", "csd", cpu=True)
    cpu = json.loads((tmp_path / "metrics/eval/csd.json").read_text())
    for mode in ("symmetric", "asymmetric"):
        assert gpu[mode]["mAP"] == pytest.approx(cpu[mode]["mAP"], abs=0.01), mode
        assert gpu[mode]["mAP"] > 0.3, mode  # a trained student, far above chance (0.1)


def two_gpu_step(rank: int, init_file: str, out: str) -> None:
    """One NCCL rank of tests.train.test_distributed's BatchNorm network, trained one step on cuda:rank."""
    import torch.distributed as dist
    from pipeline.params import Recipe
    from pipeline.train.loop import fit
    from tests.train.test_distributed import BATCH, setup
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"file://{init_file}", rank=rank, world_size=2)
    net, objective, loader = setup("fitnet", rank, 2, batch_norm=True)
    history = fit(net, objective, loader, Recipe(optimizer="sgd", lr=0.5, momentum=0.0, weight_decay=0.0,
                                                 schedule="constant", epochs=1, batch_size=BATCH), torch.device("cuda", rank))
    kinds = sorted({type(m).__name__ for m in net.modules() if "BatchNorm" in type(m).__name__})
    torch.save({"loss": history[0]["loss"], "kinds": kinds}, f"{out}.{rank}")
    dist.destroy_process_group()


@pytest.mark.skipif(ON_CPU or torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpu_ranks_train_with_synchronised_batchnorm_and_the_global_batch_loss(tmp_path):
    import torch.multiprocessing as mp
    from tests.train.test_distributed import one_step
    mp.spawn(two_gpu_step, args=(str(tmp_path / "init"), str(tmp_path / "ddp")), nprocs=2, join=True)
    one_step(0, 1, "", str(tmp_path / "single"), ["fitnet"], batch_norm=True)  # one process, the whole batch
    single = torch.load(tmp_path / "single.0")["fitnet"]
    for rank in (0, 1):
        got = torch.load(tmp_path / f"ddp.{rank}")
        assert got["kinds"] == ["SyncBatchNorm"]
        assert got["loss"] == pytest.approx(single["loss"], rel=1e-3)  # float32 on two GPUs against the CPU


def test_targets_kept_in_host_memory_give_the_loss_of_targets_on_the_gpu():
    from pipeline.params import TrainParams
    from pipeline.train.objectives import CachedTargets, build_objective
    from pipeline.train.placement import place_objective

    torch.manual_seed(0)
    n, dim, k = 64, 16, 4
    table = torch.nn.functional.normalize(torch.randn(1, n, dim), dim=-1)
    neighbours = torch.stack([torch.roll(torch.arange(n), -s) for s in range(1, k + 1)], dim=1)
    targets = CachedTargets(table, neighbours, 0, dim)
    q = torch.nn.functional.normalize(torch.randn(16, dim), dim=-1).to(DEVICE)
    items = torch.randperm(n)[:16].to(DEVICE)
    losses = []
    for budget in (None, 0):
        objective = build_objective("csd", TrainParams().csd.model_copy(update={"k": k}), targets, 0.05)
        assert place_objective(objective, DEVICE, budget) == (budget is None)
        losses.append(objective(q, torch.zeros(16, dtype=torch.long, device=DEVICE), items))
    assert losses[1].device == q.device
    assert torch.allclose(losses[0], losses[1], rtol=1e-6, atol=1e-7)
