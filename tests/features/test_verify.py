"""Cached features against the live teacher: the sample, the comparison, and the stage on a tiny project."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from pipeline.features.verify import agreement, row_cosines, sample_items
from pipeline.models.backbones import create
from stages.extract import extract
from stages.prepare import prepare
from stages.verify import verify


def test_sample_is_seeded_and_holds_plain_images_and_views():
    view_rows = np.arange(0, 100, 2)
    items = sample_items(100, view_rows, 3, 20, seed=7)
    assert np.array_equal(items, sample_items(100, view_rows, 3, 20, seed=7))
    assert not np.array_equal(items, sample_items(100, view_rows, 3, 20, seed=8))
    assert len(np.unique(items)) == 20 and np.array_equal(items, np.sort(items))
    views, rows = items // 100, items % 100
    assert (views == 0).sum() == 10 and set(views[views > 0]) <= {1, 2}
    assert np.isin(rows[views > 0], view_rows).all()


def test_sample_never_exceeds_what_the_file_holds():
    assert np.array_equal(sample_items(5, np.zeros(0, dtype=np.int64), 1, 64, seed=0), np.arange(5))
    items = sample_items(6, np.array([1, 4]), 2, 64, seed=0)
    assert np.array_equal(items, [0, 1, 2, 3, 4, 5, 7, 10])


def test_row_cosines_and_agreement_by_hand():
    cached = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    live = np.array([[2.0, 0.0], [1.0, 1.0], [0.8, 0.6]], dtype=np.float32)
    assert np.allclose(row_cosines(cached, live), [1.0, 2 ** -0.5, 0.96])
    result = agreement(cached, live, ["a", "b", "c"], worst=2)
    assert result["min_cosine"] == pytest.approx(2 ** -0.5)
    assert result["mean_cosine"] == pytest.approx((1.96 + 2 ** -0.5) / 3)
    assert result["max_abs_diff"] == pytest.approx(1.0)
    assert [w["item"] for w in result["worst"]] == ["b", "c"]
    assert result["worst"][0]["cosine"] == pytest.approx(2 ** -0.5)


PARAMS = {
    "prepare": {"limit": 120, "n_train": 60},
    "whiten": {"n_components": 16}, "mine": {"k": 8}, "train": {"csd": {"k": 8}},  # what 60 training images feed
    "teachers": {"t": {"arch": "resnet18", "image_size": 16}},
    "extract": {"scales": [1.0, 0.5], "batch_size": 16, "chunk_size": 32, "views": 2},
    "verify": {"sample": 16},
}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """A tiny project with a random teacher and its freshly extracted features (views included)."""
    root = tmp_path_factory.mktemp("cache")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        prepare(Path("params.yaml"))
        torch.manual_seed(0)
        (root / "data/teachers").mkdir(parents=True)
        torch.save(create("resnet18").state_dict(), root / "data/teachers/t.pt")
        extract("t", Path("params.yaml"))
    return root


@pytest.fixture
def project(extracted, tmp_path, monkeypatch):
    shutil.copytree(extracted, tmp_path / "p")
    monkeypatch.chdir(tmp_path / "p")
    return tmp_path / "p"


def test_a_fresh_cache_holds_and_both_environments_are_recorded(project):
    text, failure = verify("t", Path("params.yaml"))
    assert failure is None and "the cache holds" in text
    check = json.loads((project / "metrics/verify/t.json").read_text())
    assert check["passed"] and check["min_cosine"] > 0.99999 and check["max_abs_diff"] < 1e-5
    assert check["items"] == 16 and check["views"] == 8
    assert check["cached_environment"]["torch"] == torch.__version__.split("+")[0]
    assert check["cached_environment"] == check["live_environment"] and check["environment_differs"] == {}
    assert check["provenance_differs"] == {}
    again, _ = verify("t", Path("params.yaml"))
    assert [line.split(":")[0] for line in again.splitlines()] == [line.split(":")[0] for line in text.splitlines()]


def test_a_perturbed_cached_row_fails_naming_it(project):
    with h5py.File(project / "data/features/t.h5", "r+") as h5:
        items = sample_items(120, h5["view_rows"][()], 2, 16, seed=0)  # the sample verify draws
        row = int(items[items < 120][3])  # one of its plain images
        ids = h5["ids"].asstr()[()]
        h5["features"][row] = np.roll(h5["features"][row], 1)
    text, failure = verify("t", Path("params.yaml"))
    assert "DOES NOT HOLD" in text
    assert failure.startswith(f"teacher t: cached feature of {ids[row]} (row {row}) has cosine ")
    assert "below verify.min_cosine 0.999" in failure and "another" not in failure


def test_other_teacher_weights_fail(project):
    torch.manual_seed(1)
    torch.save(create("resnet18").state_dict(), project / "data/teachers/t.pt")
    _, failure = verify("t", Path("params.yaml"))
    assert failure is not None and failure.endswith("the cache was made with another weights_sha256")


def test_views_recreated_with_another_seed_fail_and_the_cli_exits_nonzero(project):
    with h5py.File(project / "data/features/t.h5", "r+") as h5:
        h5.attrs["seed"] = 1  # the views were made with seed 0: recreated from seed 1 they differ
    result = subprocess.run([str(Path(sys.executable).parent / "rdistill"), "verify", "t"], cwd=project,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"error: teacher t: cached feature of \S+ \(row \d+, view 1\) has cosine 0\.\d+ with this "
                        r"machine's, below verify\.min_cosine 0\.999", error), error
    check = json.loads((project / "metrics/verify/t.json").read_text())
    # plain images do not depend on the seed: every low cosine is a view
    assert not check["passed"] and all("view 1" in w["item"] for w in check["worst"] if w["cosine"] < 0.999)
    assert check["views"] == 8 and sum(w["cosine"] < 0.999 for w in check["worst"]) >= 1


def test_the_sample_follows_the_params_seed_not_the_cache(project):
    verify("t", Path("params.yaml"))
    first = [w["item"] for w in json.loads((project / "metrics/verify/t.json").read_text())["worst"]]
    params = yaml.safe_load((project / "params.yaml").read_text())
    (project / "params.yaml").write_text(yaml.safe_dump({**params, "seed": 5, "verify": {"sample": 16, "worst": 16}}))
    _, failure = verify("t", Path("params.yaml"))  # other items, views still recreated from the cache's seed 0
    assert failure is None
    items = {w["item"] for w in json.loads((project / "metrics/verify/t.json").read_text())["worst"]}
    assert len(items) == 16 and not set(first) <= items
