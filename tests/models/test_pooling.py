import math

import torch

from pipeline.models.pooling import gem, l2n
from pipeline.models.backbones import create


def test_gem_matches_hand_computed_value():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    # ((1 + 8 + 27 + 64) / 4) ** (1/3) = 25 ** (1/3)
    assert torch.allclose(gem(x, p=3.0), torch.tensor([[25 ** (1 / 3)]]))


def test_gem_with_p_one_is_average_pooling():
    x = torch.rand(2, 3, 5, 4) + 0.1
    assert torch.allclose(gem(x, p=1.0), x.mean(dim=(-2, -1)), atol=1e-6)


def test_l2n_gives_unit_rows():
    x = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    assert torch.allclose(l2n(x), torch.tensor([[0.6, 0.8], [0.0, 1.0]]))


def test_retrieval_net_outputs_unit_descriptors_of_requested_dim():
    net = create("resnet18", dim=16).eval()
    with torch.no_grad():
        out = net(torch.rand(3, 3, 32, 32))
    assert out.shape == (3, 16)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)
    assert math.isclose(create("mobilenet_v3_small").dim, 576)
