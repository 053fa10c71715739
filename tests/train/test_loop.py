import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pipeline.params import Recipe
from pipeline.train.loop import averaged_epochs, fit, lr_factor


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
