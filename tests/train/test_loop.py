import io
import math
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pipeline.data.dataset import make_loader
from pipeline.params import Recipe, TrainParams
from pipeline.train.loop import TrainingStep, averaged_epochs, fit, lr_factor, restore_rng_states, rng_states
from pipeline.train.objectives import CachedTargets, build_objective


def test_lr_factor_warms_up_then_decays_as_the_recipe_says():
    # 10 epochs of 4 steps; warm-up over 10 % = 4 steps from 0.1 to 1.
    cosine = Recipe(epochs=10, warmup=0.1, schedule="cosine")
    assert lr_factor(0, cosine, 4) == pytest.approx(0.1)
    assert lr_factor(2, cosine, 4) == pytest.approx(0.1 + 0.9 * 2 / 4)
    assert lr_factor(4, cosine, 4) == pytest.approx(1.0)
    assert lr_factor(4 + 18, cosine, 4) == pytest.approx(0.5)  # half of the remaining 36 steps
    assert lr_factor(40, cosine, 4) == pytest.approx(0.0, abs=1e-12)
    linear = Recipe(epochs=10, schedule="linear")
    assert lr_factor(10, linear, 4) == pytest.approx(0.75)
    exp = Recipe(epochs=10, schedule="exp")
    assert lr_factor(9, exp, 4) == pytest.approx(math.exp(-0.02))  # step 9 is in epoch 2 (0-based)
    assert lr_factor(17, Recipe(schedule="constant"), 4) == 1.0


def test_averaged_epochs_are_shares_of_training():
    assert averaged_epochs(Recipe(epochs=30, average=[2 / 3, 1.0])) == {20, 30}
    assert averaged_epochs(Recipe(epochs=3, average=[0.1])) == {1}
    assert averaged_epochs(Recipe(epochs=3)) == set()


class MSE(nn.Module):
    def forward(self, q, labels, items):
        return (q - 1).pow(2).mean()


def test_fit_averages_the_weights_of_the_chosen_epochs(tmp_path):
    data = TensorDataset(torch.randn(8, 3), torch.zeros(8, dtype=torch.long), torch.arange(8))
    loader = DataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    snapshots = []

    def run(average, keep):
        torch.manual_seed(0)
        net = nn.Linear(3, 2)
        recipe = Recipe(epochs=4, lr=0.1, schedule="constant", average=average)
        loader.generator.manual_seed(0)
        fit(net, MSE(), loader, recipe, torch.device("cpu"),
            on_epoch=(lambda r: snapshots.append([p.detach().clone() for p in net.parameters()])) if keep else None)
        return [p.detach() for p in net.parameters()]

    plain = run([], keep=True)
    averaged = run([0.5, 1.0], keep=False)
    for i, p in enumerate(averaged):
        assert torch.allclose(p, (snapshots[1][i] + snapshots[3][i]) / 2, atol=1e-6)
    assert not torch.allclose(averaged[0], plain[0])


def test_random_states_survive_a_checkpoint_loaded_onto_another_device():
    loader = DataLoader(TensorDataset(torch.arange(6)), batch_size=2, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    states = rng_states(loader)

    def draws():
        return (torch.rand(3).tolist(), np.random.rand(2).tolist(), random.random(),
                torch.randperm(6, generator=loader.generator).tolist())

    expected = draws()
    saved = io.BytesIO()
    torch.save(states, saved)
    saved.seek(0)
    # map_location moves every tensor of a checkpoint (fit loads onto the training device): "meta" stands
    # in for a GPU, and torch.set_rng_state refuses any non-CPU tensor.
    moved = torch.load(saved, map_location="meta", weights_only=True)
    torch.manual_seed(2), np.random.seed(2), random.seed(2), loader.generator.manual_seed(2)
    restore_rng_states(moved, loader)
    assert draws() == expected


def test_the_objective_runs_in_float32_under_autocast():
    torch.manual_seed(0)
    n, dim = 8, 16
    teacher = torch.nn.functional.normalize(torch.randn(1, n, dim), dim=-1)
    neighbours = torch.stack([torch.roll(torch.arange(n), -s) for s in range(1, 5)], dim=1)
    objective = build_objective("csd", TrainParams(csd={"k": 4, "tau_g": 0.01, "tau_q": 0.01}).csd,
                                CachedTargets(teacher, neighbours, 0, dim))
    net = nn.Linear(32, dim)
    x, labels, items = torch.randn(n, 32), torch.zeros(n, dtype=torch.long), torch.arange(n)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q = net(x)
        loss = TrainingStep(net, objective)(x, labels, items)
        in_half = objective(q.float(), labels, items)  # what the loss was when autocast reached the objective
    assert q.dtype == torch.bfloat16 and loss.dtype == torch.float32
    assert torch.equal(loss, objective(q.float(), labels, items))  # float32 maths on the network's output
    assert abs(in_half.item() - loss.item()) > 1e-3  # the check can tell: bfloat16 logits at tau 0.01 drift


def test_training_batches_are_full():
    data = TensorDataset(torch.zeros(9, 3, 2, 2, dtype=torch.uint8), torch.zeros(9, dtype=torch.long), torch.arange(9))
    loader = make_loader(data, 4, 0, shuffle=True, drop_last=True)
    assert [len(b[2]) for b in loader] == [4, 4]


def test_a_checkpoint_without_mixed_precision_resumes_with_a_fresh_loss_scale():
    from pipeline.train.loop import restore_scaler

    disabled = torch.amp.GradScaler("cpu", enabled=False)
    assert disabled.state_dict() == {}  # what a CPU run saves
    enabled = torch.amp.GradScaler("cpu", enabled=True, init_scale=1024.0)
    with pytest.raises(RuntimeError):
        enabled.load_state_dict(disabled.state_dict())  # loading it as it is fails
    restore_scaler(enabled, disabled.state_dict())
    assert enabled.get_scale() == 1024.0
    saved = torch.amp.GradScaler("cpu", enabled=True, init_scale=8.0).state_dict()
    restore_scaler(enabled, saved)
    assert enabled.get_scale() == 8.0
