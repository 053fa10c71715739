import math

import pytest
import torch

from pipeline.losses.whiten_mtd import (contrastive, cross_view_similarities, fuse, row_kl,
                                        whiten_mtd)

T1 = torch.tensor([[0.9, 0.1], [0.3, 0.5]])
T2 = torch.tensor([[0.7, 0.4], [0.2, 0.8]])


@pytest.mark.parametrize("rule, expected", [
    ("mean", [[0.8, 0.25], [0.25, 0.65]]),
    ("max-min", [[0.9, 0.1], [0.2, 0.8]]),
    ("max-mean", [[0.9, 0.25], [0.25, 0.8]]),
])
def test_fusion_rules_on_two_teachers_by_hand(rule, expected):
    assert torch.allclose(fuse(torch.stack([T1, T2]), rule), torch.tensor(expected))


def test_random_fusions_take_each_entry_from_one_teacher():
    teachers = torch.stack([T1, T2])
    generator = torch.Generator().manual_seed(0)
    for rule in ("rand", "max-rand"):
        fused = fuse(teachers, rule, generator)
        from_one = (fused == T1) | (fused == T2)
        assert from_one.all()
    fused = fuse(teachers, "max-rand", torch.Generator().manual_seed(1))
    assert fused[0, 0] == 0.9 and fused[1, 1] == 0.8  # diagonal is the maximum
    draws = torch.stack([fuse(teachers, "rand", generator) for _ in range(200)])
    assert 0.3 < (draws == T1).double().mean() < 0.7  # both teachers are used


def test_row_kl_equals_a_direct_softmax_kl():
    s = torch.tensor([[0.5, 0.2], [0.1, 0.6]])
    t = torch.tensor([[0.9, 0.1], [0.3, 0.5]])
    tau = 0.5
    expected = 0.0
    for i in range(2):
        zs = sum(math.exp(v / tau) for v in s[i].tolist())
        zt = sum(math.exp(v / tau) for v in t[i].tolist())
        p = [math.exp(v / tau) / zs for v in s[i].tolist()]
        q = [math.exp(v / tau) / zt for v in t[i].tolist()]
        expected += sum(qj * math.log(qj / pj) for pj, qj in zip(p, q)) / 2
    assert math.isclose(row_kl(s, t, tau, tau).item(), expected, rel_tol=1e-5)
    reverse = row_kl(s, t, tau, tau, teacher_target=False).item()
    assert not math.isclose(reverse, expected, rel_tol=1e-3)


def test_whiten_mtd_sums_rows_and_columns_and_vanishes_on_a_matching_student():
    teachers = torch.stack([T1, T2])
    fused = fuse(teachers, "max-min")
    both = whiten_mtd(fused.clone(), teachers, "max-min", 0.1, 0.1)
    assert both.abs().item() < 1e-6
    s = torch.tensor([[0.2, 0.3], [0.6, 0.1]])
    rows = row_kl(s, fused, 0.1, 0.1)
    cols = row_kl(s.T, fused.T, 0.1, 0.1)
    assert torch.isclose(whiten_mtd(s, teachers, "max-min", 0.1, 0.1), rows + cols)
    assert torch.isclose(whiten_mtd(s, teachers, "max-min", 0.1, 0.1, both_directions=False), rows)


def test_contrastive_is_cross_entropy_towards_the_diagonal():
    s = torch.tensor([[0.9, 0.1], [0.3, 0.5]])
    tau = 0.5
    row0 = -math.log(math.exp(0.9 / tau) / (math.exp(0.9 / tau) + math.exp(0.1 / tau)))
    row1 = -math.log(math.exp(0.5 / tau) / (math.exp(0.3 / tau) + math.exp(0.5 / tau)))
    assert math.isclose(contrastive(s, tau, both_directions=False).item(), (row0 + row1) / 2, rel_tol=1e-6)


def test_cross_view_similarities_of_unnormalised_rows():
    x = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    assert torch.allclose(cross_view_similarities(x, x), torch.eye(2))


def test_gradcheck():
    torch.manual_seed(0)
    s = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    teachers = torch.randn(3, 4, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: whiten_mtd(x, teachers, "max-mean", 0.3, 0.3), (s,))
    assert torch.autograd.gradcheck(lambda x: contrastive(x, 0.3), (s,))


@pytest.mark.parametrize("rule", ["mean", "max-min", "max-mean", "rand", "max-rand"])
def test_fused_nearest_picks_the_candidate_with_the_highest_fused_similarity(rule):
    # a candidate is another image: its fused similarity is the rule's off-diagonal one (METHODS §3)
    from pipeline.losses.whiten_mtd import fused_nearest
    torch.manual_seed(0)
    teachers = torch.nn.functional.normalize(torch.randn(3, 6, 4), dim=-1)
    candidates = torch.tensor([[1, 2, -1], [0, 3, 4], [5, -1, -1], [1, 2, 5], [0, 1, 2], [3, 4, 0]])
    which = torch.randint(3, (6, 3), generator=torch.Generator().manual_seed(7))  # rand: the teacher of each entry
    expected = []
    for row in range(6):
        best, best_score = None, -float("inf")
        for j, c in enumerate(candidates[row].tolist()):
            if c < 0:
                continue
            each = [float(teachers[k, row] @ teachers[k, c]) for k in range(3)]
            score = {"mean": sum(each) / 3, "max-mean": sum(each) / 3, "max-min": min(each),
                     "rand": each[which[row, j]], "max-rand": each[which[row, j]]}[rule]
            if score > best_score:
                best, best_score = c, score
        expected.append(best)
    picked = fused_nearest(teachers, teachers[:, candidates.clamp(min=0)], candidates >= 0, rule,
                           torch.Generator().manual_seed(7))
    assert candidates.gather(1, picked[:, None])[:, 0].tolist() == expected
