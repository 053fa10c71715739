"""timm backbones: pooling choices, multi-scale inputs, and weights from local files or the local HF cache."""
import pytest
import timm
import torch
from safetensors.torch import save_file

from pipeline.errors import RdistillError
from pipeline.features.extract import multiscale_descriptor
from pipeline.models.backbones import create
from pipeline.models.pooling import gem, l2n
from pipeline.models.weights import load_network, load_pretrained


def saved_timm_weights(path, name="test_vit"):
    """A timm classifier's state_dict (its head included) saved as a user would bring it; the model back."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model


def imagenet_to_model(x, model):
    mean, std = torch.tensor(model.pretrained_cfg["mean"]), torch.tensor(model.pretrained_cfg["std"])
    imagenet_mean, imagenet_std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    return ((x * imagenet_std.view(1, 3, 1, 1) + imagenet_mean.view(1, 3, 1, 1)) - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


@pytest.mark.parametrize("pool", ["token", "model", "gem"])
def test_a_transformer_teacher_from_a_safetensors_file_equals_the_timm_model(tmp_path, pool):
    model = saved_timm_weights(tmp_path / "vit.safetensors")
    net = create("timm/test_vit", None, pool=pool).eval()
    load_pretrained(net, str(tmp_path / "vit.safetensors"))
    x = torch.randn(2, 3, 48, 64)  # any size: the position embedding adapts (multi-scale extraction)
    with torch.no_grad():
        tokens = model.forward_features(imagenet_to_model(x, model))
        expected = {"token": tokens[:, 0], "model": model.forward_head(tokens, pre_logits=True),
                    "gem": gem(tokens[:, 1:].transpose(1, 2).unsqueeze(-1))}[pool]
        assert torch.allclose(net(x), l2n(expected), atol=1e-5)
        assert multiscale_descriptor(net, x, [1.0, 0.5]).shape == (2, 64)
    # the resolved teacher is saved as a RetrievalNet state and loads back to equal outputs
    torch.save(net.state_dict(), tmp_path / "teacher.pt")
    again = load_network(tmp_path / "teacher.pt", "timm/test_vit", None, pool).eval()
    with torch.no_grad():
        assert torch.equal(again(x), net(x))


def test_a_cnn_gives_a_feature_map_for_gem_and_refuses_a_token(tmp_path):
    model = saved_timm_weights(tmp_path / "resnet.safetensors", "test_resnet")
    net = create("timm/test_resnet", 16).eval()
    load_pretrained(net, str(tmp_path / "resnet.safetensors"))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net.trunk(x), model.forward_features(imagenet_to_model(x, model)), atol=1e-5)
    assert net(x).shape == (2, 16)
    with pytest.raises(RdistillError, match="pool token needs a transformer"):
        create("timm/test_resnet", None, pool="token")(x)
    with pytest.raises(RdistillError, match="resnet18: pool token needs a timm model"):
        create("resnet18", None, pool="token")
    with pytest.raises(RdistillError, match="timm has no model 'no_such_net'"):
        create("timm/no_such_net")


def test_pretrained_weights_come_from_the_local_hugging_face_cache_only(tmp_path, monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    net = create("timm/test_vit", None, pool="token")
    with pytest.raises(RdistillError, match=r"timm/test_vit: weights timm/test_vit.r160_in1k are not in the local "
                                            r"Hugging Face cache; rdistill never downloads"):
        load_pretrained(net, "pretrained")
    snapshot = tmp_path / "hub/models--timm--test_vit.r160_in1k/snapshots/0123abcd"
    snapshot.mkdir(parents=True)
    model = saved_timm_weights(snapshot / "model.safetensors")
    (tmp_path / "hub/models--timm--test_vit.r160_in1k/refs").mkdir()
    (tmp_path / "hub/models--timm--test_vit.r160_in1k/refs/main").write_text("0123abcd")
    load_pretrained(net, "pretrained")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), l2n(model.forward_features(imagenet_to_model(x, model))[:, 0]), atol=1e-5)


def test_a_timm_teacher_runs_through_teacher_extract_and_verify(tmp_path, monkeypatch):
    from pathlib import Path

    import yaml

    from stages.extract import extract
    from stages.prepare import prepare
    from stages.teacher import teacher
    from stages.verify import verify
    saved_timm_weights(tmp_path / "vit.safetensors")
    params = {"prepare": {"limit": 40, "n_train": 20}, "whiten": {"n_components": 8}, "mine": {"k": 8},
              "train": {"csd": {"k": 8}},
              "teachers": {"vit": {"arch": "timm/test_vit", "weights": str(tmp_path / "vit.safetensors"),
                                   "pool": "token", "image_size": 32}},
              "extract": {"scales": [1.0, 0.7071], "batch_size": 8, "chunk_size": 16, "views": 2}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    for stage in (lambda p: prepare(p), lambda p: teacher("vit", p), lambda p: extract("vit", p)):
        stage(Path("params.yaml"))
    _, failure = verify("vit", Path("params.yaml"), sample=8)
    assert failure is None
