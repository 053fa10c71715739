import pytest
import torch

from pipeline.losses.baselines import fitnet
from pipeline.params import TrainParams
from pipeline.train.objectives import OBJECTIVES, Targets, build_objective


def targets(n=12, dim=6, k=4, n_classes=3):
    torch.manual_seed(0)
    teacher = torch.nn.functional.normalize(torch.randn(n, dim), dim=1)
    neighbours = torch.stack([torch.roll(torch.arange(n), -s) for s in range(1, k + 1)], dim=1)
    return Targets(teacher, neighbours, n_classes, dim)


@pytest.mark.parametrize("method", sorted(OBJECTIVES))
def test_every_registered_method_trains_from_cached_targets(method):
    params = TrainParams.model_validate({"csd": {"k": 4}, "d3still": {"k": 4}, "mixup_ap": {"rounds": 2}})
    objective = build_objective(method, params, targets())
    q = torch.randn(8, 6, requires_grad=True)
    rows = torch.tensor([0, 2, 3, 5, 6, 8, 9, 11])
    loss = objective(torch.nn.functional.normalize(q, dim=1), rows % 3, rows)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss) and q.grad.abs().sum() > 0


def test_teacher_feature_objectives_look_up_the_batch_rows():
    t = targets()
    objective = build_objective("fitnet", TrainParams(), t)
    q = torch.randn(3, 6)
    rows = torch.tensor([7, 1, 4])
    assert torch.equal(objective(q, rows, rows), fitnet(q, t.teacher[rows]))


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(Exception, match=r"unknown method 'nope' \(known: csd, d3still"):
        build_objective("nope", TrainParams(), targets())


def test_d3still_objective_adds_the_weighted_supervised_term():
    from pipeline.losses.d3still import d3still
    t = targets()
    params = TrainParams.model_validate({"d3still": {"k": 4, "supervised_weight": 0.5}})
    objective = build_objective("d3still", params, t)
    q = torch.nn.functional.normalize(torch.randn(6, 6), dim=1)
    rows, labels = torch.tensor([0, 1, 2, 3, 4, 5]), torch.tensor([0, 1, 2, 0, 1, 2])
    expected = d3still(q, t.teacher[rows], k=4) + 0.5 * objective.supervised(q, labels, rows)
    assert torch.isclose(objective(q, labels, rows), expected)
