import math

import torch

from pipeline.losses.triplet import batch_hard_triplet


def test_batch_hard_triplet_by_hand():
    # 1-d features: distances are |a − b|. Labels a a b b c (c has no positive: left out of the mean)
    x = torch.tensor([[0.0], [1.0], [1.5], [4.0], [9.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2])
    # anchor 0: hardest positive 1 (1.0), hardest negative 2 (1.5) -> relu(1.0 − 1.5 + 0.3) = 0
    # anchor 1: positive 0 (1.0), negative 2 (0.5)                 -> 1.0 − 0.5 + 0.3 = 0.8
    # anchor 2: positive 3 (2.5), negative 1 (0.5)                 -> 2.5 − 0.5 + 0.3 = 2.3
    # anchor 3: positive 2 (2.5), negative 2? no: negatives 0, 1, 4 -> nearest 1 (3.0) -> 2.5 − 3 + 0.3 = 0
    expected = (0 + 0.8 + 2.3 + 0) / 4
    assert math.isclose(batch_hard_triplet(x, labels, 0.3).item(), expected, rel_tol=1e-12)


def test_batch_hard_triplet_by_loops_on_random_features():
    torch.manual_seed(0)
    x = torch.randn(10, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 3, 3])
    terms = []
    for a in range(10):
        pos = [torch.dist(x[a], x[p]) for p in range(10) if p != a and labels[p] == labels[a]]
        neg = [torch.dist(x[a], x[n]) for n in range(10) if labels[n] != labels[a]]
        terms.append(torch.relu(max(pos) - min(neg) + 0.5))
    assert torch.isclose(batch_hard_triplet(x, labels, 0.5), torch.stack(terms).mean())
    # no anchor with both a positive and a negative: zero, with a gradient of zeros
    lone = torch.randn(3, 4, requires_grad=True)
    loss = batch_hard_triplet(lone, torch.tensor([0, 1, 2]), 0.3)
    loss.backward()
    assert loss.item() == 0 and torch.equal(lone.grad, torch.zeros(3, 4))
