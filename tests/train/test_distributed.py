"""DDP under gloo: two CPU processes take one gradient step equal to a single process's on the whole batch."""
import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pipeline.data.views import OneViewPerImage
from pipeline.distributed import Shard
from pipeline.params import Recipe
from pipeline.train.loop import fit
from pipeline.train.objectives import Targets, build_objective
from pipeline.params import TrainParams

N, BATCH = 8, 8


def setup(rank: int, world: int):
    torch.manual_seed(0)
    images = torch.randn(N, 3, 4, 4)
    teacher = torch.nn.functional.normalize(torch.randn(1, N, 6), dim=-1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(48, 6))
    objective = build_objective("fitnet", TrainParams(), Targets(teacher, None, 0, 6))
    generator = torch.Generator().manual_seed(0)
    sampler = OneViewPerImage(N, 1, generator)
    if world > 1:
        sampler = Shard(sampler, rank, world)
    data = TensorDataset(images, torch.zeros(N, dtype=torch.long), torch.arange(N))
    return net, objective, DataLoader(data, batch_size=BATCH // world, sampler=sampler, generator=generator)


def one_step(rank: int, world: int, init_file: str, out: str) -> None:
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    net, objective, loader = setup(rank, world)
    fit(net, objective, loader, Recipe(optimizer="sgd", lr=0.5, momentum=0.0, weight_decay=0.0, schedule="constant",
                                       epochs=1, batch_size=BATCH), torch.device("cpu"))
    torch.save({k: v.clone() for k, v in net.state_dict().items()}, f"{out}.{rank}")
    if world > 1:
        dist.destroy_process_group()


def test_two_gloo_ranks_take_the_single_process_gradient_step(tmp_path):
    one_step(0, 1, "", str(tmp_path / "single"))
    mp.spawn(one_step, args=(2, str(tmp_path / "init"), str(tmp_path / "ddp")), nprocs=2, join=True)
    single = torch.load(tmp_path / "single.0")
    initial = setup(0, 1)[0].state_dict()
    for rank in (0, 1):
        ddp = torch.load(tmp_path / f"ddp.{rank}")
        for key in single:
            assert torch.allclose(ddp[key], single[key], atol=1e-6), key
            assert not torch.allclose(single[key], initial[key])  # a step was taken


def test_shards_are_disjoint_equal_and_keep_pairs_together():
    class Fixed(torch.utils.data.Sampler):
        def __len__(self):
            return 14

        def __iter__(self):
            return iter(range(14))

    shards = [list(Shard(Fixed(), rank, 3, unit=2)) for rank in range(3)]
    assert shards == [[0, 1, 6, 7], [2, 3, 8, 9], [4, 5, 10, 11]]  # 7 pairs: the seventh is left out
    assert all(len(Shard(Fixed(), r, 3, unit=2)) == 4 for r in range(3))
    assert not set(np.concatenate(shards)) & {12, 13}
