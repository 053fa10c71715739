import pytest
import torch

from pipeline.errors import RdistillError
from pipeline.models.backbones import create


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small"])
def test_last_stride_one_doubles_the_final_feature_map_and_keeps_the_weights(arch):
    torch.manual_seed(0)
    plain = create(arch, 8)
    torch.manual_seed(0)
    strided = create(arch, 8, last_stride=1)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), strided.state_dict().values()))
    x = torch.randn(2, 3, 64, 64)
    assert plain.trunk(x).shape[-1] == 2  # 64 px / 32
    assert strided.trunk(x).shape[-1] == 4
    assert strided(x).shape == (2, 8)


def test_last_stride_is_refused_where_the_last_downsampling_is_no_convolution():
    with pytest.raises(RdistillError, match="densenet121: last_stride 1 .* supported"):
        create("densenet121", 8, last_stride=1)
