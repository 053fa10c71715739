import math

import torch

from pipeline.losses.mixup_ap import ap_loss, mix, mixup_ap_loss, mixup_labels, mixup_partners, soft_ap, soft_bins


def test_bins_spread_unit_weight_and_saturate_at_the_ends():
    scores = torch.tensor([1.2, 1.0, 0.3, -0.95, -1.5], dtype=torch.float64)
    p = soft_bins(scores, n_bins=5)  # centres 1, .5, 0, -.5, -1 (Δ = .5)
    assert torch.allclose(p.sum(-1), torch.ones(5, dtype=torch.float64))
    assert p[0, 0] == 1 and p[4, -1] == 1
    assert torch.allclose(p[2], torch.tensor([0, 0.6, 0.4, 0, 0], dtype=torch.float64))


def test_ap_loss_is_one_minus_exact_ap_with_fine_bins_and_separated_scores():
    # scores on bin centres (Δ = 0.01): each falls in one bin, so the binned AP is the exact AP
    scores = torch.tensor([[0.9, 0.5, 0.1, -0.3], [0.2, 0.7, -0.6, 0.0]], dtype=torch.float64)
    relevance = torch.tensor([[1, 0, 1, 0], [1, 0, 0, 1]], dtype=torch.float64)
    exact = [(1 / 1 + 2 / 3) / 2, (1 / 2 + 2 / 3) / 2]  # row 1 ranked: .7 (no), .2 (yes), 0 (yes), -.6
    assert torch.allclose(soft_ap(scores, relevance, n_bins=201), torch.tensor(exact, dtype=torch.float64))
    assert math.isclose(ap_loss(scores, relevance, 201).item(), 1 - sum(exact) / 2, rel_tol=1e-12)
    no_positive = torch.cat([relevance, torch.zeros(1, 4, dtype=torch.float64)])
    assert math.isclose(ap_loss(torch.cat([scores, scores[:1]]), no_positive, 201).item(), 1 - sum(exact) / 2)


def test_mixup_labels_by_hand():
    # two originals that are not similar to each other; mixed sample 2 = mix(0, 1), mixed 3 = mix(1, 1)
    sim = torch.tensor([[1.0, 0.1, 0.5, 0.2],
                        [0.1, 1.0, 0.6, 0.9],
                        [0.5, 0.6, 1.0, 0.3],
                        [0.2, 0.9, 0.3, 1.0]])
    y = mixup_labels(sim, partners=torch.tensor([1, 1]), tau=0.75)
    expected = torch.tensor([[1, 0, 1, 0],
                             [0, 1, 1, 1],
                             [1, 1, 1, 0],
                             [0, 1, 0, 1]], dtype=torch.bool)
    # row 2 takes the positives of 0 ({0}) and 1 ({1, 3}); symmetry adds (0, 2) and (1, 2);
    # row 3 takes the positives of 1 twice ({1, 3}) and its own (3)
    expected[2, 3] = True
    expected[3, 2] = True
    assert torch.equal(y, expected)


def test_mix_is_a_normalised_convex_combination():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mixed = mix(f, torch.tensor([1, 0]), 0.5)
    assert torch.allclose(mixed, torch.full((2, 2), 1 / math.sqrt(2)))


def test_mixup_ap_loss_prefers_a_student_that_ranks_like_the_teacher_and_has_gradients():
    torch.manual_seed(0)
    t = torch.nn.functional.normalize(torch.randn(12, 6, dtype=torch.float64), dim=1)
    t = torch.cat([t, t + 0.05 * torch.randn(12, 6, dtype=torch.float64)])  # close pairs: positives
    torch.manual_seed(1)
    same = mixup_ap_loss(t.clone(), t, rounds=3, tau=0.75)
    torch.manual_seed(1)
    noise = mixup_ap_loss(torch.randn(24, 6, dtype=torch.float64), t, rounds=3, tau=0.75)
    assert same < noise
    s = torch.randn(24, 6, dtype=torch.float64, requires_grad=True)
    mixup_ap_loss(s, t, rounds=2).backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_gradcheck_of_the_ap_loss():
    torch.manual_seed(0)
    scores = (torch.rand(3, 6, dtype=torch.float64) * 1.8 - 0.9).requires_grad_()
    relevance = torch.tensor([[1, 0, 1, 0, 0, 1]] * 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: ap_loss(x, relevance, 9), (scores,))


def test_binned_sums_equal_the_soft_bin_assignment_and_its_gradient():
    from pipeline.losses.mixup_ap import binned_sums
    torch.manual_seed(0)
    scores = (torch.rand(4, 9, dtype=torch.float64) * 2.4 - 1.2).requires_grad_()
    weights = torch.rand(4, 9, dtype=torch.float64)
    by_bins = (soft_bins(scores, 7) * weights.unsqueeze(-1)).sum(1)
    fast = binned_sums(scores, weights, 7)
    assert torch.allclose(fast, by_bins)
    g1, = torch.autograd.grad((by_bins * torch.arange(7.0, dtype=torch.float64)).sum(), scores)
    g2, = torch.autograd.grad((fast * torch.arange(7.0, dtype=torch.float64)).sum(), scores)
    assert torch.allclose(g1, g2)


def plain_reference(s, t, rounds, tau, n_bins, detach_mixed=True):
    """METHODS §6 by loops: self dropped from each row by indexing, mixed student rows detached (or not)."""
    b = len(s)
    s, t = torch.nn.functional.normalize(s, dim=1), torch.nn.functional.normalize(t, dim=1)
    beta = torch.distributions.Beta(torch.tensor(1.0), torch.tensor(1.0))
    losses = []
    for _ in range(rounds):
        lam = float(beta.sample())
        partners = mixup_partners(b)
        mixed = mix(s, partners, lam)
        f_t, f_s = torch.cat([t, mix(t, partners, lam)]), torch.cat([s, mixed.detach() if detach_mixed else mixed])
        y = mixup_labels(f_t @ f_t.T, partners, tau)
        per_row = []
        for q in range(2 * b):
            others = [m for m in range(2 * b) if m != q]
            rel = y[q, others].double()
            if rel.sum() == 0:
                continue
            p = soft_bins((f_s[q] @ f_s[others].T), n_bins)  # (2B − 1, C)
            pos, every = (p * rel[:, None]).sum(0), p.sum(0)
            per_row.append(1 - ((pos.cumsum(0) / every.cumsum(0).clamp_min(1e-12)) * pos / pos.sum()).sum())
        losses.append(torch.stack(per_row).mean())
    return torch.stack(losses).mean()


def test_mixup_ap_loss_equals_a_plain_reference_and_mixed_student_rows_carry_no_gradient():
    torch.manual_seed(0)
    s = torch.randn(10, 5, dtype=torch.float64, requires_grad=True)
    t = torch.randn(10, 5, dtype=torch.float64)
    grads = {}
    for name, run in (("loss", lambda: mixup_ap_loss(s, t, rounds=3, alpha=1.0, tau=0.5, n_bins=11)),
                      ("detached", lambda: plain_reference(s, t, 3, 0.5, 11)),
                      ("not detached", lambda: plain_reference(s, t, 3, 0.5, 11, detach_mixed=False))):
        torch.manual_seed(3)
        value = run()
        grads[name] = (value, torch.autograd.grad(value, s)[0])
    assert torch.isclose(grads["loss"][0], grads["detached"][0]) and torch.isclose(grads["loss"][0], grads["not detached"][0])
    assert torch.allclose(grads["loss"][1], grads["detached"][1])
    assert not torch.allclose(grads["loss"][1], grads["not detached"][1], atol=1e-3)


def test_mixup_partners_are_never_the_sample_itself_and_reach_every_other():
    torch.manual_seed(0)
    drawn = torch.stack([mixup_partners(5) for _ in range(400)])  # (400, 5)
    assert not (drawn == torch.arange(5)).any()
    for k in range(5):
        assert set(drawn[:, k].tolist()) == set(range(5)) - {k}

def reference_quantizer(scores: torch.Tensor, n_bins: int) -> torch.Tensor:
    """The AP-loss reference code's quantizer: each bin the min of two lines through its centre (the
    first and last bin a constant 1 on their outer side), clamped at 0. (M,) -> (M, C)."""
    a = (n_bins - 1) / 2.0  # 1 / Δ over [−1, 1]
    centres = 1.0 - torch.arange(n_bins, dtype=scores.dtype) / a
    s = scores.unsqueeze(-1)
    rising = 1 - a * (centres - s)   # 1 at the centre, 0 one step below it
    falling = 1 - a * (s - centres)  # 1 at the centre, 0 one step above it
    falling[..., 0] = 1.0 + 0 * s[..., 0]
    rising[..., -1] = 1.0 + 0 * s[..., 0]
    return torch.min(rising, falling).clamp(min=0)


def bin_gradients(quantize, score: float, n_bins: int) -> torch.Tensor:
    """d(weight of bin b)/d(score) for every bin b, at one score."""
    s = torch.tensor([score], dtype=torch.float64, requires_grad=True)
    return torch.stack([torch.autograd.grad(quantize(s)[0, b], s, retain_graph=True)[0][0] for b in range(n_bins)])


def test_bin_subgradients_at_the_ends_and_on_centres_follow_the_reference_by_hand():
    # C = 5: centres 1, .5, 0, −.5, −1, Δ = .5, slopes ±2. torch's `min` splits a tie's gradient between
    # its two lines, and clamp(min=0) passes none where a line is exactly 0.
    from pipeline.losses.mixup_ap import binned_sums
    by_hand = {1.0: [1, 0, 0, 0, 0],      # first bin: the constant 1 (0) ties the rising line (+2); bin 2 is at 0
               -1.0: [0, 0, 0, 0, -1],    # last bin: the falling line (−2) ties the constant 1 (0)
               0.5: [0, 0, 0, 0, 0],      # an inner centre: its bin's lines tie (+2 − 2), its neighbours are at 0
               0.3: [0, 2, -2, 0, 0],     # between centres: no kink
               1.2: [0, 0, 0, 0, 0]}      # beyond the range: saturated
    for score, expected in by_hand.items():
        expected = torch.tensor(expected, dtype=torch.float64)
        assert torch.equal(bin_gradients(lambda s: reference_quantizer(s, 5), score, 5), expected), score
        assert torch.equal(bin_gradients(lambda s: soft_bins(s, 5), score, 5), expected), score
        fast = lambda s: binned_sums(s[None], torch.ones(1, 1, dtype=torch.float64), 5)  # noqa: E731
        assert torch.equal(bin_gradients(fast, score, 5), expected), score


def test_binned_sums_follow_the_reference_quantizer_on_every_centre_and_end():
    from pipeline.losses.mixup_ap import binned_sums
    n_bins = 9
    scores = torch.cat([1 - torch.arange(n_bins, dtype=torch.float64) * 0.25, torch.tensor([0.1, -0.6, 1.3, -1.4],
                                                                                         dtype=torch.float64)])
    weights = torch.rand(len(scores), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    scores = scores.requires_grad_()
    reference = (reference_quantizer(scores, n_bins) * weights[:, None]).sum(0)
    fast = binned_sums(scores[None], weights[None], n_bins)[0]
    assert torch.allclose(fast, reference)
    mix_of_bins = torch.arange(1.0, n_bins + 1, dtype=torch.float64) ** 2
    g_ref, = torch.autograd.grad((reference * mix_of_bins).sum(), scores)
    g_fast, = torch.autograd.grad((fast * mix_of_bins).sum(), scores)
    assert torch.allclose(g_fast, g_ref)
