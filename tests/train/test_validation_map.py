"""Validation mAP during training: what `evaluate` would score for the network at that moment."""
import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.data.dataset import ImageListDataset, eval_transform, make_loader
from pipeline.data.listfile import read_list, write_list
from pipeline.features.extract import describe_to_file
from pipeline.models.backbones import create
from pipeline.train.validation import validation_scorer
from tests.reference import average_precision

SCALES = (1.0, 0.5)


@pytest.fixture
def image_list(tmp_path):
    """Four colour classes of six noisy images each; three of each class held out as validation rows."""
    rng = np.random.default_rng(0)
    paths, labels, splits = [], [], []
    colours = [(120, 100, 100), (100, 120, 100), (100, 100, 120), (110, 110, 100)]
    for label, colour in enumerate(colours):
        for i in range(6):
            pixels = np.clip(np.asarray(colour) + rng.normal(0, 60, (24, 20, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / f"{label}-{i}.png")
            paths.append(f"{label}-{i}.png"), labels.append(label), splits.append("val" if i % 2 else "train")
    write_list(tmp_path / "list.csv", paths, labels, splits)
    return read_list(tmp_path / "list.csv")


def test_validation_map_is_the_brute_force_map_of_the_features_evaluate_describes(image_list, tmp_path):
    torch.manual_seed(0)
    net = create("resnet18", 16).train()
    scorer = validation_scorer(image_list, 32, SCALES, 5, torch.device("cpu"))
    rng_before = torch.get_rng_state()
    got = scorer(net)
    assert torch.equal(torch.get_rng_state(), rng_before)  # training's random numbers are untouched
    assert net.training  # handed back in training mode

    rows = image_list.rows("val")
    dataset = ImageListDataset(image_list.paths, image_list.labels, rows, eval_transform(32), decode_size=32)
    describe_to_file(net, make_loader(dataset, 5, 0, by_shape=True), SCALES, image_list.ids, len(rows),
                     torch.device("cpu"), tmp_path / "evaluate.h5")
    with h5py.File(tmp_path / "evaluate.h5") as f:
        feats = f["features"][()][rows]
    order = np.argsort(-(feats @ feats.T), axis=1, kind="stable")
    labels = image_list.labels[rows]
    relevant = labels[order] == labels[:, None]
    kept = order != np.arange(len(rows))[:, None]  # a query is never matched against itself
    expected = float(np.nanmean(average_precision(relevant, kept)))
    assert 0.0 < expected < 1.0 and got == pytest.approx(expected, abs=1e-12)


def test_no_validation_rows_no_scorer(tmp_path):
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    write_list(tmp_path / "list.csv", ["a.png", "b.png"], [0, 0], ["train", "test"])
    assert validation_scorer(read_list(tmp_path / "list.csv"), 32, SCALES, 4, torch.device("cpu")) is None


def test_validating_while_training_changes_nothing_training_does(image_list):
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from pipeline.params import Recipe
    from pipeline.train.loop import fit

    class Spread(nn.Module):  # pull descriptors of one batch apart
        def forward(self, q, labels, items):
            return (q @ q.T).pow(2).mean()

    images = torch.rand(8, 3, 32, 32)
    data = TensorDataset(images, torch.zeros(8, dtype=torch.long), torch.arange(8))
    scorer = validation_scorer(image_list, 32, SCALES, 5, torch.device("cpu"))

    def run(validate_every):
        torch.manual_seed(0)
        net = create("resnet18", 16)
        loader = DataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
        told = []
        history = fit(net, Spread(), loader, Recipe(epochs=3, lr=0.01, average=[2 / 3, 1.0]), torch.device("cpu"),
                      on_epoch=lambda r: told.append(dict(r)), validate=scorer if validate_every is not None else None,
                      validate_every=validate_every or 0)
        return net, history, told

    plain_net, plain, _ = run(None)
    net, history, told = run(1)
    for a, b in zip(plain_net.state_dict().values(), net.state_dict().values()):
        assert torch.equal(a, b)
    assert [r["loss"] for r in history] == [r["loss"] for r in plain] and "val_map" not in plain[-1]
    assert all("val_map" in r for r in history) and told == history  # the last told once final
    assert history[-1]["val_map"] == pytest.approx(scorer(net), abs=1e-12)  # the averaged network's, not epoch 3's
    _, only_final, _ = run(0)
    assert ["val_map" in r for r in only_final] == [False, False, True]
