import math

import torch

from pipeline.features.extract import multiscale_descriptor


def width_descriptor(x):
    """A stand-in network whose descriptor [1, W] reveals the scale it was given."""
    return torch.tensor([[1.0, float(x.shape[-1])]] * x.shape[0])


def test_multiscale_averages_normalised_descriptors_by_hand():
    images = torch.zeros(2, 3, 4, 4)
    got = multiscale_descriptor(width_descriptor, images, scales=[1.0, 0.7071, 0.5])
    # sizes 4, round(2.83) = 3 and 2: l2n each of [1, w], sum, l2n again
    parts = [(1 / math.hypot(1, w), w / math.hypot(1, w)) for w in (4, 3, 2)]
    total = (sum(p[0] for p in parts), sum(p[1] for p in parts))
    norm = math.hypot(*total)
    expected = torch.tensor([total[0] / norm, total[1] / norm])
    assert torch.allclose(got, expected.expand(2, 2), atol=1e-6)
    assert math.isclose(expected[0].item(), 0.33670, abs_tol=1e-4)


def test_single_scale_is_plain_normalised_descriptor():
    got = multiscale_descriptor(width_descriptor, torch.zeros(1, 3, 3, 3), scales=[1.0])
    assert torch.allclose(got, torch.tensor([[1.0, 3.0]]) / math.sqrt(10))
