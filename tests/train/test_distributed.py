"""DDP under gloo: two CPU processes compute the loss of the global batch and take one gradient step equal
to a single process's on the whole batch, for every method (batch-level losses included)."""
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pipeline.data.views import OneViewPerImage
from pipeline.distributed import Shard
from pipeline.params import Recipe, TrainParams
from pipeline.train.loop import fit
from pipeline.train.objectives import OBJECTIVES, CachedTargets, build_objective

N, BATCH, DIM, CLASSES = 16, 16, 6, 4
# Every registered method, and one with the supervised term added (its proxies are parameters too).
METHODS = sorted(OBJECTIVES) + ["csd+supervised"]


def setup(method: str, rank: int, world: int, batch_norm: bool = False):
    torch.manual_seed(0)
    images = torch.randn(N, 3, 4, 4)
    teachers = torch.nn.functional.normalize(torch.randn(2, N, DIM), dim=-1)
    neighbours = torch.stack([torch.roll(torch.arange(N), -s) for s in range(1, 9)], dim=1)
    layers = [nn.Flatten(), nn.Linear(48, 12)] + ([nn.BatchNorm1d(12)] if batch_norm else []) + [nn.Linear(12, DIM)]
    net = nn.Sequential(*layers)
    base, supervised = method.partition("+")[::2]
    params = TrainParams(csd={"k": 8})
    objective = build_objective(base, getattr(params, base), CachedTargets(teachers, neighbours, CLASSES, DIM),
                                params.temperature, supervised_weight=1.0 if supervised else 0.0)
    generator = torch.Generator().manual_seed(0)
    sampler = OneViewPerImage(N, 1, generator)
    if world > 1:
        sampler = Shard(sampler, rank, world, BATCH // world)
    data = TensorDataset(images, torch.arange(N) % CLASSES, torch.arange(N))
    return net, objective, DataLoader(data, batch_size=BATCH // world, sampler=sampler, generator=generator)


class PerShard(nn.Module):
    """One process computing what `shards` ranks compute with per-rank BatchNorm: the network runs on each
    contiguous part of the batch (a rank's shard) and the outputs are joined in rank order."""

    def __init__(self, net: nn.Module, shards: int):
        super().__init__()
        self.net, self.shards = net, shards

    def forward(self, x):
        return torch.cat([self.net(part) for part in x.chunk(self.shards)])


def one_step(rank: int, world: int, init_file: str, out: str, methods: list[str], lr: float = 0.5,
             batch_norm: bool = False, shards: int = 1) -> None:
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    results = {}
    for method in methods:
        net, objective, loader = setup(method, rank, world, batch_norm)
        history = fit(PerShard(net, shards) if shards > 1 else net, objective, loader,
                      Recipe(optimizer="sgd", lr=lr, momentum=0.0, weight_decay=0.0, schedule="constant", epochs=1,
                             batch_size=BATCH), torch.device("cpu"))
        results[method] = {"loss": history[0]["loss"], **{k: v.clone() for k, v in net.state_dict().items()}}
    torch.save(results, f"{out}.{rank}")
    if world > 1:
        dist.destroy_process_group()


def test_two_gloo_ranks_compute_the_single_process_loss_and_step_for_every_method(tmp_path):
    one_step(0, 1, "", str(tmp_path / "single"), METHODS)
    mp.spawn(one_step, args=(2, str(tmp_path / "init"), str(tmp_path / "ddp"), METHODS), nprocs=2, join=True)
    single = torch.load(tmp_path / "single.0")
    for method in METHODS:
        initial = setup(method, 0, 1)[0].state_dict()
        # The step's size sets the tolerance: gradients summed in another order (per rank, then all-reduced)
        # differ by a few float32 units of the largest terms. (A loss may have parameters it cannot move:
        # RKD's distances and angles ignore a shift of the output, so the biases feeding it get no gradient.)
        step = max((single[method][key] - initial[key]).abs().max().item() for key in initial)
        assert step > 1e-2, method  # a step was taken: equal weights would otherwise prove nothing
        for rank in (0, 1):
            ddp = torch.load(tmp_path / f"ddp.{rank}")[method]
            assert ddp["loss"] == pytest.approx(single[method]["loss"], rel=1e-5), method
            for key in initial:
                assert torch.allclose(ddp[key], single[method][key], rtol=1e-5, atol=1e-5 * step), (method, key)


# Batch-level losses of every kind: in-batch lists, pairwise relations, regression, similarity matrices.
BATCHNORM_METHODS = ["d3still", "rkd", "fitnet", "contrastive"]


def test_with_batchnorm_cpu_ranks_normalise_their_own_shards(tmp_path):
    """On the CPU (gloo) SyncBatchNorm cannot run: each rank normalises its shard with its own statistics.
    What holds exactly is one process whose BatchNorm sees each shard apart; one process with the global
    batch's statistics differs (on CUDA, train.sync_bn gives that instead: tests/test_cuda.py)."""
    one_step(0, 1, "", str(tmp_path / "global"), BATCHNORM_METHODS, batch_norm=True)
    one_step(0, 1, "", str(tmp_path / "shards"), BATCHNORM_METHODS, batch_norm=True, shards=2)
    mp.spawn(one_step, args=(2, str(tmp_path / "init"), str(tmp_path / "ddp"), BATCHNORM_METHODS, 0.5, True),
             nprocs=2, join=True)
    global_batch, per_shard = torch.load(tmp_path / "global.0"), torch.load(tmp_path / "shards.0")
    for method in BATCHNORM_METHODS:
        initial = setup(method, 0, 1, batch_norm=True)[0].state_dict()
        step = max((per_shard[method][key] - initial[key]).abs().max().item() for key in initial
                   if initial[key].is_floating_point())
        ddp = torch.load(tmp_path / "ddp.0")[method]
        assert ddp["loss"] == pytest.approx(per_shard[method]["loss"], rel=1e-5), method
        for key in (k for k in initial if initial[k].is_floating_point()):  # not BatchNorm's batch counter
            assert torch.allclose(ddp[key], per_shard[method][key], rtol=1e-5, atol=1e-5 * step), (method, key)
        # BatchNorm over 16 rows is not BatchNorm over two shards of 8: the global batch's step is another
        apart = max((ddp[key] - global_batch[method][key]).abs().max().item() for key in initial
                    if initial[key].is_floating_point())
        assert apart > 1e-3 * step, method


def test_batchnorm_statistics_are_averaged_over_the_ranks(tmp_path):
    # lr ~0: the weights stay equal, so the re-estimated statistics can be compared with one process's.
    one_step(0, 1, "", str(tmp_path / "single"), ["fitnet"], 1e-12, True)
    mp.spawn(one_step, args=(2, str(tmp_path / "init"), str(tmp_path / "ddp"), ["fitnet"], 1e-12, True),
             nprocs=2, join=True)
    single = torch.load(tmp_path / "single.0")["fitnet"]
    ranks = [torch.load(tmp_path / f"ddp.{rank}")["fitnet"] for rank in (0, 1)]
    # One batch of 16 vs two shards of 8: the mean of the shards' means is the batch mean.
    assert torch.allclose(ranks[0]["2.running_mean"], single["2.running_mean"], atol=1e-6)
    for key in ("2.running_mean", "2.running_var"):
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    assert not torch.allclose(ranks[0]["2.running_mean"], torch.zeros(12))


def test_shards_are_contiguous_parts_of_each_global_batch():
    class Fixed(torch.utils.data.Sampler):
        def __len__(self):
            return 14

        def __iter__(self):
            return iter(range(14))

    shards = [list(Shard(Fixed(), rank, 3, per_rank=2)) for rank in range(3)]
    # global batches of 6: [0..5], [6..11]; the incomplete [12, 13] is left out; pairs stay together
    assert shards == [[0, 1, 6, 7], [2, 3, 8, 9], [4, 5, 10, 11]]
    assert all(len(Shard(Fixed(), r, 3, per_rank=2)) == 4 for r in range(3))
    assert [i for part in zip(*(np.reshape(s, (2, 2)) for s in shards)) for i in np.concatenate(part)] == list(range(12))


def test_batchnorm_is_synchronised_for_several_cuda_ranks_only():
    """The conversion the trainer applies (checked on the CPU: converting needs no GPU, running does)."""
    from pipeline.distributed import synchronised_batchnorm

    def net():
        return nn.Sequential(nn.Flatten(), nn.Linear(48, 12), nn.BatchNorm1d(12), nn.Linear(12, DIM))
    kinds = lambda m: [type(layer).__name__ for layer in m.modules() if "BatchNorm" in type(layer).__name__]
    converted = synchronised_batchnorm(net(), torch.device("cuda"), 2)
    assert kinds(converted) == ["SyncBatchNorm"]
    assert set(converted.state_dict()) == set(net().state_dict())  # a checkpoint loads into the plain network
    assert kinds(synchronised_batchnorm(net(), torch.device("cpu"), 2)) == ["BatchNorm1d"]
    assert kinds(synchronised_batchnorm(net(), torch.device("cuda"), 1)) == ["BatchNorm1d"]
