import math

import torch

from pipeline.losses.csd import csd_kl, csd_norm


def hand_case():
    g = torch.tensor([[1.0, 0.0]])
    neighbours = torch.tensor([[[0.0, 1.0]]])  # K = 1
    q = torch.tensor([[0.6, 0.8]])
    return q, g, neighbours


def test_csd_kl_matches_hand_computed_softmax_kl():
    q, g, neighbours = hand_case()
    # C_g = [g.g, g.f] = [1, 0]; C_q = [q.g, q.f] = [0.6, 0.8]; tau = 1
    p_g = [math.e / (math.e + 1), 1 / (math.e + 1)]
    z_q = math.exp(0.6) + math.exp(0.8)
    p_q = [math.exp(0.6) / z_q, math.exp(0.8) / z_q]
    expected = sum(a * math.log(a / b) for a, b in zip(p_g, p_q))
    got = csd_kl(q, g, neighbours, tau_g=1.0, tau_q=1.0)
    assert math.isclose(got.item(), expected, rel_tol=1e-5)
    assert math.isclose(got.item(), 0.16214, abs_tol=1e-4)


def test_csd_kl_temperatures_scale_the_logits():
    q, g, neighbours = hand_case()
    # tau_g = 0.5 doubles the teacher logits: C_g / tau_g = [2, 0]
    p_g = [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)]
    z_q = math.exp(0.6 / 2) + math.exp(0.8 / 2)
    p_q = [math.exp(0.3) / z_q, math.exp(0.4) / z_q]
    expected = sum(a * math.log(a / b) for a, b in zip(p_g, p_q))
    assert math.isclose(csd_kl(q, g, neighbours, tau_g=0.5, tau_q=2.0).item(), expected, rel_tol=1e-5)


def test_csd_kl_is_zero_when_student_equals_teacher_and_averages_over_batch(rng):
    g = torch.nn.functional.normalize(torch.from_numpy(rng.standard_normal((4, 8))).float(), dim=1)
    neighbours = torch.nn.functional.normalize(torch.from_numpy(rng.standard_normal((4, 5, 8))).float(), dim=2)
    assert csd_kl(g, g, neighbours, 0.05, 0.05).abs().item() < 1e-6
    q = torch.nn.functional.normalize(torch.from_numpy(rng.standard_normal((4, 8))).float(), dim=1)
    per_sample = [csd_kl(q[i:i + 1], g[i:i + 1], neighbours[i:i + 1], 0.1, 0.2).item() for i in range(4)]
    assert math.isclose(csd_kl(q, g, neighbours, 0.1, 0.2).item(), sum(per_sample) / 4, rel_tol=1e-5)


def test_csd_l1_and_l2_match_hand_values():
    q, g, neighbours = hand_case()
    # C_q - C_g = [-0.4, 0.8]
    assert math.isclose(csd_norm(q, g, neighbours, alpha=1.0).item(), 1.2, rel_tol=1e-6)
    assert math.isclose(csd_norm(q, g, neighbours, alpha=2.0).item(), math.sqrt(0.8), rel_tol=1e-6)


def test_csd_kl_gradient_check():
    torch.manual_seed(0)
    q = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 4, dtype=torch.float64)
    neighbours = torch.randn(3, 2, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: csd_kl(x, g, neighbours, 0.5, 0.7), (q,))
