"""What a first multi-GPU run would meet, caught on the CPU: SyncBatchNorm conversion of timm's BatchNormAct2d,
DDP over timm trunks with unreached head parameters, DVCLive on rank 0 only, random erasing leaving CUDA's
generators alone, cuBLAS's deterministic workspace set before any stage runs, and process groups that end."""
import copy
import datetime
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

SILU_MINIMUM = -0.2785  # min over x of x·sigmoid(x), at x ≈ −1.278


def test_sync_batchnorm_keeps_the_activation_of_timm_batchnorm_act():
    from timm.layers import BatchNormAct2d

    from pipeline.distributed import to_sync_batchnorm

    torch.manual_seed(0)
    layer = BatchNormAct2d(8, act_layer=nn.SiLU)
    layer.running_mean.normal_()
    layer.running_var.uniform_(0.5, 2.0)
    layer.weight.data.normal_()
    layer.bias.data.normal_()
    net = nn.Sequential(nn.Conv2d(3, 8, 3), layer).eval()
    converted = to_sync_batchnorm(copy.deepcopy(net)).eval()
    assert "SyncBatchNorm" in type(converted[1]).__name__
    assert set(converted.state_dict()) == set(net.state_dict())  # checkpoints load either way
    x = torch.randn(2, 3, 12, 12) * 3
    with torch.no_grad():
        expected, got = net(x), converted(x)
    assert got.min() >= SILU_MINIMUM  # the activation is still applied
    assert torch.allclose(got, expected, atol=1e-6)  # eval mode: running statistics, the same arithmetic


def test_plain_batchnorm_is_converted_as_torch_does():
    from pipeline.distributed import to_sync_batchnorm

    net = to_sync_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)))
    assert type(net[1]) is nn.SyncBatchNorm


def ddp_two_steps(rank: int, world: int, init_file: str, out: str) -> None:
    from pipeline.models.backbones import create
    from pipeline.params import Recipe
    from pipeline.train.loop import fit

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    net = create("timm/convnext_atto", 8)
    objective = _MeanSquare()
    images = torch.randn(8, 3, 32, 32)
    data = torch.utils.data.TensorDataset(images[rank::world], torch.zeros(4, dtype=torch.long), torch.arange(4))
    loader = torch.utils.data.DataLoader(data, batch_size=2)  # two steps: DDP fails at the second on unused params
    history = fit(net, objective, loader, Recipe(epochs=1, batch_size=4), torch.device("cpu"), sync_batchnorm=False)
    torch.save({"steps": len(loader), "loss": history[0]["loss"]}, f"{out}.{rank}")
    dist.destroy_process_group()


class _MeanSquare(nn.Module):
    def forward(self, q, labels, items):
        return (q ** 2).mean()


def test_ddp_trains_a_timm_trunk_whose_head_parameters_forward_features_never_reaches(tmp_path):
    from pipeline.models.backbones import create

    net = create("timm/convnext_atto", 8)
    q = net(torch.randn(2, 3, 32, 32))
    q.sum().backward()
    unreached = [name for name, p in net.named_parameters() if p.grad is None]
    assert unreached  # the premise: a ConvNeXt trunk keeps its head's norm, which GeM pooling never uses
    mp.spawn(ddp_two_steps, args=(2, str(tmp_path / "init"), str(tmp_path / "out")), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"out.{rank}") for rank in (0, 1)]
    assert [r["steps"] for r in results] == [2, 2] and np.isfinite(results[0]["loss"])


def log_on_rank(rank: int, world: int, init_file: str, folder: str) -> None:
    from pathlib import Path

    from pipeline.train.live import epoch_logger

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    with epoch_logger(Path(folder) / f"rank-{rank}") as log_epoch:
        log_epoch({"epoch": 1, "loss": 0.5, "lr": 0.1, "seconds": 1.0})
    dist.destroy_process_group()


def test_only_rank_zero_opens_the_training_log(tmp_path):
    import subprocess
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
                   cwd=tmp_path, check=True)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # DVCLive reads the repository it runs in
    try:
        mp.spawn(log_on_rank, args=(2, str(tmp_path / "init"), str(tmp_path / "live")), nprocs=2, join=True)
    finally:
        os.chdir(cwd)
    assert (tmp_path / "live/rank-0/metrics.json").is_file()
    assert not (tmp_path / "live/rank-1").exists()


def test_random_erasing_seeds_the_cpu_generator_only(monkeypatch):
    from pipeline.data.views import RandomlyErased

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.full((3, 8, 8), 255, dtype=torch.uint8), 0, i

    reseeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: reseeded.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: reseeded.append(seed))
    erased = RandomlyErased(Images(), 1.0)
    before = torch.random.get_rng_state()
    first = erased[(0, 12345)]
    assert not reseeded  # a CUDA generator reseeded here would tie mixup's draws to the erasing draws
    assert torch.equal(torch.random.get_rng_state(), before)  # and the CPU generator is restored
    assert torch.equal(erased[(0, 12345)][0], first[0]) and (first[0] != 255).any()  # seeded by the draw, erased


def test_the_command_line_sets_the_cublas_workspace_before_a_stage_runs(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import stages.cli as cli
    import stages.prepare as prepare_stage

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    seen = []
    monkeypatch.setattr(prepare_stage, "prepare", lambda path: seen.append(os.environ.get("CUBLAS_WORKSPACE_CONFIG")))
    result = CliRunner().invoke(cli.app, ["--params", str(tmp_path / "params.yaml"), "prepare"])
    assert result.exit_code == 0, result.output
    assert seen == [":4096:8"]
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # a user's own choice is kept
    CliRunner().invoke(cli.app, ["prepare"])
    assert seen[-1] == ":16:8"


def test_training_collectives_and_the_wait_for_rank_zero_have_their_own_timeouts(monkeypatch):
    import pipeline.distributed as distributed

    joined, groups = {}, []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend, **kw: joined.update(backend=backend, **kw))
    monkeypatch.setattr(distributed.dist, "new_group", lambda **kw: groups.append(kw) or "waits")
    distributed.init_from_env(120)
    assert joined["timeout"] == datetime.timedelta(minutes=distributed.TRAINING_TIMEOUT_MINUTES)
    assert groups == [{"backend": "gloo", "timeout": datetime.timedelta(minutes=120)}]
    waited = []
    monkeypatch.setattr(distributed, "rank_and_world", lambda: (0, 2))
    monkeypatch.setattr(distributed.dist, "barrier", lambda group=None: waited.append(group))
    assert distributed.main_first(lambda: 7) == 7 and waited == ["waits"]


def leave(rank: int, world: int, init_file: str, out: str) -> None:
    from pipeline import distributed

    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    distributed._waits = dist.new_group(backend="gloo", timeout=datetime.timedelta(minutes=1))
    made = distributed.main_first(lambda: rank)
    distributed.finish()
    torch.save({"made": made, "initialised": dist.is_initialized()}, f"{out}.{rank}")


def test_every_rank_leaves_the_process_group(tmp_path):
    mp.spawn(leave, args=(2, str(tmp_path / "init"), str(tmp_path / "out")), nprocs=2, join=True)
    assert [torch.load(tmp_path / f"out.{r}") for r in (0, 1)] == [{"made": 0, "initialised": False},
                                                                   {"made": 1, "initialised": False}]


@pytest.mark.parametrize("arch", ["resnet18", "timm/efficientnet_b0"])
def test_checkpoints_of_converted_networks_load_into_plain_ones(arch):
    from pipeline.distributed import to_sync_batchnorm
    from pipeline.models.backbones import create

    net = create(arch, 8)
    converted = to_sync_batchnorm(copy.deepcopy(net))
    assert not any(type(m).__name__.startswith("BatchNorm") and "Sync" not in type(m).__name__
                   for m in converted.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    net.load_state_dict(converted.state_dict())  # strict: the same keys


def test_training_logs_without_dvclive_where_it_is_not_installed(monkeypatch, tmp_path, caplog):
    import sys

    from pipeline.train.live import epoch_logger

    monkeypatch.setitem(sys.modules, "dvclive", None)  # import dvclive now raises ImportError
    with epoch_logger(tmp_path / "live") as log_epoch:
        log_epoch({"epoch": 1, "loss": 0.5, "lr": 0.1, "seconds": 1.0})
    assert not (tmp_path / "live").exists()
    assert "dvclive is not installed" in caplog.text
