import itertools
import math

import numpy as np
import torch

from pipeline.losses.baselines import embedding_distillation, fitnet, pair_loss, pkt, rkd, second_order


def smooth_l1(a, b):
    d = abs(a - b)
    return 0.5 * d * d if d < 1 else d - 0.5


def rkd_loop(s, t):
    s, t = np.asarray(s, float), np.asarray(t, float)
    n = len(s)

    def dist(x):
        d = np.array([[max(((x[i] - x[j]) ** 2).sum(), 1e-12) ** 0.5 if i != j else 0.0 for j in range(n)] for i in range(n)])
        return d / d[d > 0].mean()

    ds, dt = dist(s), dist(t)
    distance = sum(smooth_l1(ds[i, j], dt[i, j]) for i in range(n) for j in range(n)) / n ** 2

    def cos_at(x, i, j, k):
        a, b = x[j] - x[i], x[k] - x[i]
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))

    angle = sum(smooth_l1(cos_at(s, i, j, k), cos_at(t, i, j, k)) for i, j, k in itertools.product(range(n), repeat=3)) / n ** 3
    return 25 * distance + 50 * angle


def test_rkd_matches_loops(rng):
    s, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 5))
    assert math.isclose(rkd(torch.from_numpy(s), torch.from_numpy(t)).item(), rkd_loop(s, t), rel_tol=1e-9)


def test_pkt_matches_loops_and_vanishes_for_equal_inputs(rng):
    s, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))

    def probs(x):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        c = (x @ x.T + 1) / 2
        return c / c.sum(1, keepdims=True)

    ps, pt = probs(s), probs(t)
    expected = sum(pt[i, j] * math.log((pt[i, j] + 1e-7) / (ps[i, j] + 1e-7)) for i in range(3) for j in range(3)) / 9
    assert math.isclose(pkt(torch.from_numpy(s), torch.from_numpy(t)).item(), expected, rel_tol=1e-9)
    assert abs(pkt(torch.from_numpy(t), torch.from_numpy(t)).item()) < 1e-12


def test_pair_and_second_order_by_hand():
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    q = torch.tensor([[0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
    # S^q = q gᵀ = [[.6, .8], [0, 1]], S^g = I: row norms √(.16 + .64) = √.8 and 0
    assert math.isclose(pair_loss(q, g).item(), math.sqrt(0.8) / 2, rel_tol=1e-12)
    # first: ((1 - .6)² + 0) / 2; S Tᵀ off-diagonal [.8, 0] vs [0, 0]: .32; S Sᵀ off-diagonal [.8, .8]: .64
    expected = 0.16 / 2 + 2.0 * 0.32 + 3.0 * 0.64
    assert math.isclose(second_order(q, g, 2.0, 3.0).item(), expected, rel_tol=1e-12)


def test_fitnet_and_embedding_distillation_by_hand():
    s = torch.tensor([[1.0, 2.0]])
    assert fitnet(s, torch.tensor([[0.0, 0.0]])).item() == 2.5
    teachers = torch.tensor([[[1.0, 0.0]], [[1.0, 4.0]]])  # two teachers, one sample
    assert embedding_distillation(s, teachers).item() == (4 + 4) / 2


def test_gradchecks(rng):
    t = torch.from_numpy(rng.standard_normal((4, 3)))
    s = torch.from_numpy(rng.standard_normal((4, 3))).requires_grad_()
    for loss in (rkd, pkt, pair_loss, second_order, fitnet):
        assert torch.autograd.gradcheck(lambda x: loss(x, t), (s,)), loss.__name__
