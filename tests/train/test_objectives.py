import pytest
import torch
import torch.nn.functional as F

from pipeline.losses.baselines import fitnet, pkt, second_order
from pipeline.losses.csd import csd_norm
from pipeline.losses.whiten_mtd import contrastive, cross_view_similarities, whiten_mtd
from pipeline.params import TrainParams
from pipeline.methods import METHODS
from pipeline.train.objectives import OBJECTIVES, CachedTargets, build_objective


def targets(n=12, dim=6, k=4, n_classes=3, n_teachers=1, n_views=1):
    torch.manual_seed(0)
    teachers = F.normalize(torch.randn(n_teachers, n_views * n, dim), dim=-1)
    neighbours = torch.stack([torch.roll(torch.arange(n), -s) for s in range(1, k + 1)], dim=1)
    return CachedTargets(teachers, neighbours, n_classes, dim)



def build(method, params, targets, supervised_weight=0.0):
    """build_objective as the train stage calls it: the method's own section and the shared temperature."""
    return build_objective(method, getattr(params, method, None), targets, params.temperature, supervised_weight)

@pytest.mark.parametrize("method", sorted(OBJECTIVES))
def test_every_registered_method_trains_from_cached_targets(method):
    params = TrainParams.model_validate({"csd": {"k": 4}, "d3still": {"k": 4}, "mixup_ap": {"rounds": 2}})
    objective = build(method, params, targets(n_teachers=2), supervised_weight=0.5)
    q = torch.randn(8, 6, requires_grad=True)
    items = torch.tensor([0, 2, 3, 5, 6, 8, 9, 11])
    loss = objective(F.normalize(q, dim=1), items % 3, items)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss) and q.grad.abs().sum() > 0


def test_teacher_feature_objectives_look_up_the_batch_items():
    t = targets()
    objective = build("fitnet", TrainParams(), t)
    q = torch.randn(3, 6)
    items = torch.tensor([7, 1, 4])
    assert torch.equal(objective(q, items, items), fitnet(q, t.teacher[items]))


@pytest.mark.parametrize("method, loss", [("second_order", lambda q, g: second_order(q, g, 0.5, 2.0)), ("pkt", pkt)])
def test_baseline_weights_scale_the_loss(method, loss):
    t = targets()
    section = {"weight": 3.0, **({"lambda_1": 0.5, "lambda_2": 2.0} if method == "second_order" else {})}
    objective = build(method, TrainParams.model_validate({method: section}), t)
    q = torch.randn(5, 6)
    items = torch.tensor([7, 1, 4, 0, 11])
    assert torch.isclose(objective(q, items, items), 3.0 * loss(q, t.teacher[items]))


def test_csd_matches_the_seen_view_against_the_plain_neighbours():
    n = 12
    t = targets(n=n, n_views=2)
    objective = build("csd", TrainParams.model_validate({"csd": {"k": 4, "variant": "l2"}}), t)
    q = F.normalize(torch.randn(2, 6), dim=1)
    items = torch.tensor([1 * n + 3, 5])  # view 1 of row 3, view 0 of row 5
    rows = items % n
    expected = csd_norm(q, t.teacher[items], t.teacher[t.neighbours[rows]], alpha=2.0)
    assert torch.isclose(objective(q, rows, items), expected)


def test_whiten_mtd_objective_fuses_every_teacher_on_cross_view_pairs():
    t = targets(n_teachers=3)
    objective = build("whiten_mtd", TrainParams(), t)
    q = F.normalize(torch.randn(6, 6), dim=1)
    items = torch.tensor([0, 4, 1, 7, 2, 9])  # pairs (0,4), (1,7), (2,9)
    x, y = items[0::2], items[1::2]
    per_teacher = torch.stack([tk[x] @ tk[y].T for tk in t.teachers])
    expected = whiten_mtd(q[0::2] @ q[1::2].T, per_teacher, "max-min")
    assert torch.isclose(objective(q, items, items), expected)
    assert METHODS["whiten_mtd"].pairs and METHODS["contrastive"].pairs
    assert sorted(OBJECTIVES) == sorted(METHODS)  # every method has its objective, and no objective lacks an entry


def test_contrastive_objective_ignores_teachers():
    objective = build("contrastive", TrainParams(), targets())
    q = F.normalize(torch.randn(4, 6), dim=1)
    assert torch.isclose(objective(q, None, torch.arange(4)), contrastive(cross_view_similarities(q[0::2], q[1::2])))


def test_ed_averages_the_squared_distance_to_every_teacher():
    t = targets(n_teachers=2)
    objective = build("ed", TrainParams(), t)
    q = torch.randn(3, 6)
    items = torch.tensor([2, 5, 8])
    by_hand = sum(((q[i] - t.teachers[k, items[i]]) ** 2).sum() for k in range(2) for i in range(3)) / 6
    assert torch.isclose(objective(q, items, items), by_hand)


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(Exception, match=r"unknown method 'nope' \(known: contrastive, csd, d3still"):
        build("nope", TrainParams(), targets())


def test_supervised_weight_adds_the_students_own_loss_when_labels_exist():
    from pipeline.losses.d3still import d3still
    t = targets()
    objective = build("d3still", TrainParams.model_validate({"d3still": {"k": 4}}), t, supervised_weight=0.5)
    q = F.normalize(torch.randn(6, 6), dim=1)
    items, labels = torch.tensor([0, 1, 2, 3, 4, 5]), torch.tensor([0, 1, 2, 0, 1, 2])
    expected = d3still(q, t.teacher[items], k=4) + 0.5 * objective.classification(q, labels, items)
    assert torch.isclose(objective(q, labels, items), expected)
    unlabelled = CachedTargets(t.teachers, t.neighbours, 0, 6)
    assert not hasattr(build("d3still", TrainParams(), unlabelled, 0.5), "classification")


def test_the_cross_entropy_and_triplet_supervised_term_is_linear_softmax_plus_batch_hard_triplet():
    from pipeline.losses.triplet import batch_hard_triplet
    t = targets()
    objective = build_objective("fitnet", TrainParams().fitnet, t, 0.05, supervised_weight=2.0,
                                supervised="ce_triplet", triplet_margin=0.3)
    q = F.normalize(torch.randn(6, 6), dim=1)
    labels, items = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([0, 1, 2, 3, 4, 5])
    classifier = objective.classification.classifier
    expected = (fitnet(q, t.teacher[items]) * TrainParams().fitnet.weight
                + 2.0 * (F.cross_entropy(q @ classifier.weight.T + classifier.bias, labels)
                         + batch_hard_triplet(q, labels, 0.3)))
    assert torch.isclose(objective(q, labels, items), expected)
    plain = build_objective("fitnet", TrainParams().fitnet, t, 0.05, supervised_weight=2.0)
    assert hasattr(plain.classification, "proxies")  # the default stays the normalised softmax
