import math

import numpy as np
import torch

from pipeline.losses.d3still import d3still, d3still_terms


def loop_reference(q, g, k, m, tie_counts_as_consistent=False):
    """D3still terms with plain Python loops over samples, positions and pairs (METHODS §5)."""
    q = [np.asarray(v) / np.linalg.norm(v) for v in q]
    g = [np.asarray(v) / np.linalg.norm(v) for v in g]
    n = len(g)
    l_f_sq, irpd, crpd = 0.0, 0.0, 0.0
    for i in range(n):
        sims_g = [float(g[i] @ g[j]) for j in range(n)]
        order = sorted(range(n), key=lambda j: -sims_g[j])[:k]  # stable: ties keep index order
        cg = [sims_g[j] for j in order]
        cq = [float(q[i] @ g[j]) for j in order]
        l_f_sq += (cg[0] - cq[0]) ** 2
        inc, con = 0.0, 0.0
        for j in range(1, k):
            for l in range(1, k):
                dq, dg = cq[l] - cq[j], cg[l] - cg[j]
                r = (dq - dg) / (m + abs(dg))
                ratio = dq / (dg if dg != 0 else 1.0)
                if ratio < 0:
                    inc += r * r
                elif ratio > 0 or (tie_counts_as_consistent and ratio == 0 and j != l):
                    con += r * r
        irpd += math.sqrt(inc) / (k - 1)
        crpd += math.sqrt(con) / (k - 1)
    return math.sqrt(l_f_sq) / n, irpd / n, crpd / n


def test_three_by_three_against_loops_and_a_worked_tie():
    # unit vectors with exact (dyadic) entries, so that the tie below is exact
    g = [[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5], [0.0, 1.0, 0.0, 0.0]]
    q = [[0.5, 0.5, -0.5, 0.5], [0.5, -0.5, 0.5, 0.5], [0.5, 0.5, 0.5, -0.5]]
    as64 = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    got = [t.item() for t in d3still_terms(as64(q), as64(g), k=3, m=0.1)]
    assert np.allclose(got, loop_reference(q, g, k=3, m=0.1), atol=1e-12)
    # by hand: C^g_{i,0} = 1 and C^q_{i,0} = q_i·g_i = 0.5 for every i -> L_f = √(3 · 0.25) / 3
    assert math.isclose(got[0], math.sqrt(0.75) / 3, rel_tol=1e-12)
    # samples 0 and 2: C^g = [1, .5, 0], C^q = [.5, .5, .5]; their pair is a student tie:
    # Δ^q = 0, Δ^g = ∓0.5, R = ±0.5 / 0.6, ratio 0 -> in neither mask (H(0) = 0)
    # sample 1: order [1, 0, 2] (teacher tie kept in index order), C^g = [1, .5, .5], C^q = [.5, .5, -.5]:
    # Δ^g = 0 so the ratio's denominator is 1; Δ^q = -1 (inconsistent, R = -10) and +1 (consistent, R = 10)
    assert math.isclose(got[1], 10 / 2 / 3, rel_tol=1e-12)  # ‖R‖_F / (k - 1), mean over n = 3
    assert math.isclose(got[2], 10 / 2 / 3, rel_tol=1e-12)
    with_tie = loop_reference(q, g, k=3, m=0.1, tie_counts_as_consistent=True)
    extra = 2 * math.sqrt(2 * (0.5 / 0.6) ** 2) / 2 / 3
    assert math.isclose(with_tie[2], got[2] + extra, rel_tol=1e-9)


def test_zero_when_student_equals_teacher_and_batch_permutation_invariant(rng):
    g = torch.from_numpy(rng.standard_normal((6, 5)))
    assert all(t.item() < 1e-12 for t in d3still_terms(g.clone(), g, k=4))
    q = torch.from_numpy(rng.standard_normal((6, 5)))
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    a, b = d3still(q, g, k=4), d3still(q[perm], g[perm], k=4)
    assert torch.isclose(a, b, rtol=1e-10)


def test_weights_combine_the_terms(rng):
    q, g = (torch.from_numpy(rng.standard_normal((5, 4))) for _ in range(2))
    l_f, l_irpd, l_crpd = d3still_terms(q, g, k=4)
    assert torch.isclose(d3still(q, g, k=4, alpha=2, beta=3, gamma=4), 2 * l_f + 3 * l_irpd + 4 * l_crpd)


def test_gradcheck(rng):
    q = torch.from_numpy(rng.standard_normal((5, 4))).requires_grad_()
    g = torch.from_numpy(rng.standard_normal((5, 4)))
    assert torch.autograd.gradcheck(lambda x: d3still(x, g, k=4), (q,))
