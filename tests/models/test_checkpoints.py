"""Checkpoints as users have them: training-script wrappers, a `module.` prefix and cirtorch-style retrieval
networks (learned GeM p, whitening layer on the l2-normalised pooled vector), each written by the test."""
import pytest
import torch
import torchvision

from pipeline.errors import RdistillError
from pipeline.models.backbones import create, trunk_of
from pipeline.models.weights import load_network, network_state, pretrained_network


def cirtorch_checkpoint(path, p: float, whiten_dim: int | None, seed: int = 0):
    """A cirtorch ImageRetrievalNet's file: {'state_dict': features.*, pool.p, whiten.*; 'meta': …}."""
    torch.manual_seed(seed)
    trunk = trunk_of(torchvision.models.resnet18(), "resnet18")
    state = {f"features.{k}": v for k, v in trunk.state_dict().items()}
    state["pool.p"] = torch.tensor([p])
    if whiten_dim:
        state["whiten.weight"] = torch.randn(whiten_dim, 512) / 512 ** 0.5
        state["whiten.bias"] = torch.randn(whiten_dim) * 0.1
    meta = {"architecture": "resnet18", "pooling": "gem", "whitening": bool(whiten_dim), "outputdim": whiten_dim or 512}
    torch.save({"state_dict": state, "meta": meta, "epoch": 3}, path)
    return trunk, state


def cirtorch_descriptor(trunk, state, x):
    """What cirtorch computes, written out: GeM with the learned p, l2n, whitening, l2n."""
    p = float(state["pool.p"][0])
    pooled = trunk.eval()(x).clamp_min(1e-6).pow(p).mean(dim=(-2, -1)).pow(1 / p)
    pooled = pooled / pooled.norm(dim=1, keepdim=True)
    if "whiten.weight" not in state:
        return pooled
    out = pooled @ state["whiten.weight"].T + state["whiten.bias"]
    return out / out.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("whiten_dim", [None, 16])
def test_a_cirtorch_checkpoint_gives_its_own_descriptors_and_survives_the_teacher_file(tmp_path, whiten_dim):
    trunk, state = cirtorch_checkpoint(tmp_path / "retrieval-sfm120k.pth", 2.7, whiten_dim)
    net = pretrained_network("resnet18", None, "gem", str(tmp_path / "retrieval-sfm120k.pth")).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = cirtorch_descriptor(trunk, state, x)
        assert torch.allclose(net(x), expected, atol=1e-5)
        assert net.dim == (whiten_dim or 512) and net.pool.p == pytest.approx(2.7)
        torch.save(network_state(net), tmp_path / "teacher.pt")  # as the teacher stage writes it
        again = load_network(tmp_path / "teacher.pt", "resnet18", None).eval()
        assert torch.equal(again(x), net(x))


def test_a_whitening_layer_of_another_size_than_the_teachers_dim_is_refused(tmp_path):
    cirtorch_checkpoint(tmp_path / "r.pth", 3.0, 16)
    with pytest.raises(RdistillError, match=r"r.pth: its whitening layer gives 16 dimensions, not the teacher's dim 32"):
        pretrained_network("resnet18", 32, "gem", str(tmp_path / "r.pth"))


@pytest.mark.parametrize("wrap", [lambda s: {"model": s}, lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}},
                                  lambda s: {"model_state_dict": s, "optimizer": {}, "epoch": 10}])
def test_training_script_wrappers_and_a_ddp_prefix_are_unwrapped(tmp_path, wrap):
    torch.manual_seed(1)
    classifier = torchvision.models.resnet18()
    torch.save(wrap(classifier.state_dict()), tmp_path / "ckpt.pth")
    net = pretrained_network("resnet18", None, "gem", str(tmp_path / "ckpt.pth"))
    for key, value in trunk_of(classifier, "resnet18").state_dict().items():
        assert torch.equal(net.trunk.state_dict()[key], value), key


def test_an_unknown_layout_is_refused_naming_the_unmatched_keys(tmp_path):
    torch.save({"encoder.conv.weight": torch.zeros(3), "encoder.fc.weight": torch.zeros(2)}, tmp_path / "odd.pth")
    with pytest.raises(RdistillError) as caught:
        pretrained_network("resnet18", None, "gem", str(tmp_path / "odd.pth"))
    message = str(caught.value)
    assert "odd.pth" in message and "2 unexpected ('encoder.conv.weight', 'encoder.fc.weight')" in message
    assert "missing ('conv1.weight'" in message and "\n" not in message


def test_an_rdistill_teacher_file_keeps_its_linear_layer(tmp_path):
    net = create("resnet18", 24)
    torch.save(network_state(net), tmp_path / "t.pt")
    again = pretrained_network("resnet18", None, "gem", str(tmp_path / "t.pt"))
    assert again.dim == 24 and torch.equal(again.head.weight, net.head.weight)
