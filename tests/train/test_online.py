"""Online distillation, the reference that measures what the cache costs: the teacher's targets computed live
agree with the cached ones on the cached views, only the online path runs the teacher, and it resumes exactly."""
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from pipeline.data.dataset import normalize_batch
from pipeline.data.listfile import read_list
from pipeline.data.views import FRESH_VIEWS, FreshViewPerImage, FreshViews, item_loader
from pipeline.errors import RdistillError
from pipeline.params import load_params
from pipeline.train import online
from pipeline.models.backbones import create
from tests.test_resume import PARAMS, RDISTILL, assert_same_weights, kill_once_written

# 80 training images: 16 whitened dimensions, square-rooted PCA as the demo (power 0.25)
ONLINE = {**PARAMS, "extract": {**PARAMS["extract"], "views": 2}, "whiten": {"n_components": 16, "power": 0.25},
          "mine": {"k": 4}, "train": {"student": {"arch": "resnet18", "image_size": 16}, "seeds": [0],
                                      "override": {"epochs": 2, "batch_size": 16}, "csd": {"k": 4}},
          "students": {"cached": {"method": "csd", "teacher": "t"},
                       "live": {"method": "csd", "teacher": "t", "online": True}}}


def cache_teacher(project) -> None:
    """The teacher's cached views, whitening and neighbours, as `dvc repro` makes them."""
    (project / "params.yaml").write_text(yaml.safe_dump(ONLINE))
    for command in (["prepare"], ["extract", "t"], ["whiten", "t"], ["mine", "t"]):
        done = subprocess.run([RDISTILL, *command], cwd=project, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def cached_once(tmp_path_factory):
    """A project with a random resnet18 teacher's cached views, whitening and neighbours, made once per module."""
    project = tmp_path_factory.mktemp("cached")
    (project / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    subprocess.run([RDISTILL, "prepare"], cwd=project, check=True, capture_output=True)
    torch.manual_seed(0)
    (project / "data/teachers").mkdir(parents=True)
    torch.save(create("resnet18").state_dict(), project / "data/teachers/t.pt")
    cache_teacher(project)
    return project


@pytest.fixture
def project(cached_once, tmp_path):
    """This test's own copy of the cached project."""
    return Path(shutil.copytree(cached_once, tmp_path / "project"))


def online_teacher(project) -> online.OnlineTeacher:
    params = load_params(project / "params.yaml")
    with h5py.File(project / "data/whitened/t.h5") as h5:
        plain = torch.from_numpy(h5["features"][()])
    return online.load_online_teacher("t", params.teachers["t"], params.extract.scales,
                                      project / "data/teachers/t.pt", project / "data/whitening/t.h5", plain)


def test_online_targets_are_the_cached_ones_on_the_cached_views(project):
    teacher = online_teacher(project)
    image_list = read_list(project / "data/prepared/list.csv")
    rows = image_list.train_rows()[:12]
    with h5py.File(project / "data/whitened/t.h5") as h5:
        plain = h5["features"][()]
        view_rows, view_1 = h5["view_rows"][()], h5["views"][0]
    # view 0: the plain image, prepared as extraction prepares it (aspect kept, batched by shape)
    for groups in item_loader(image_list, rows, 32, 0, 8, 0):
        for images, _, items in groups:
            live = teacher.describe(images)
            assert live.shape == (len(items), 16)
            # unit vectors: float32 rounding of the convolutions (batches of other sizes), amplified by the
            # whitening's eigenvalue spread to the power 0.25, stays far below 1e-4
            np.testing.assert_allclose(live.numpy(), plain[items.numpy()], atol=1e-4)
    # view 1: the seeded crop the cache holds, cut at the teacher's resolution by the online dataset
    fresh = FreshViews(image_list.paths, image_list.labels, view_rows, 16, 32, 0)
    n = len(view_rows)
    student_images, _, items, teacher_images = zip(*(fresh[n + i] for i in range(6)))  # n..2n − 1: view 1
    assert [int(i) for i in items] == [len(image_list) + int(r) for r in view_rows[:6]]
    assert student_images[0].shape == (3, 16, 16) and teacher_images[0].shape == (3, 32, 32)
    live = teacher.describe(normalize_batch(torch.stack(teacher_images))).numpy()
    np.testing.assert_allclose(live, view_1[:6], atol=1e-4)
    assert np.abs(live - plain[view_rows[:6]]).max() > 0.05  # the crop's target is not the plain image's
    # a batch mixing plain images and crops: the plain ones read from the cache, the network runs on the crops
    _, _, plain_items, plain_images = zip(*(fresh[i] for i in range(2)))
    calls = teacher.calls
    mixed = teacher(normalize_batch(torch.stack([*plain_images, *teacher_images[:2]])),
                    torch.tensor([*plain_items, *items[:2]]))
    assert teacher.calls == calls + 1 and mixed.shape == (1, 4, 16)
    assert torch.equal(mixed[0, :2], torch.from_numpy(plain[view_rows[:2]]))
    np.testing.assert_allclose(mixed[0, 2:].numpy(), view_1[:2], atol=1e-4)
    teacher(normalize_batch(torch.stack(plain_images)), torch.tensor(plain_items))
    assert teacher.calls == calls + 1  # only plain images: the network does not run


def test_fresh_views_show_the_plain_image_as_the_cache_does_and_otherwise_a_new_crop():
    sampler = FreshViewPerImage(2000, 4, torch.Generator().manual_seed(0))
    first, second = list(sampler), list(sampler)
    assert sorted(i % 2000 for i in first) == list(range(2000))
    views = np.array([i // 2000 for i in first + second])
    assert views.max() <= FRESH_VIEWS
    # plain with probability 1/4 over 4,000 draws: 1,000 ± 3 SD (√750 ≈ 27)
    assert 920 < (views == 0).sum() < 1080
    by_image = [{i % 2000: i // 2000 for i in epoch} for epoch in (first, second)]
    cropped_twice = [r for r in range(2000) if by_image[0][r] and by_image[1][r]]
    # two crops of one image coincide with probability 1/1008: about 1 in the ~1,125 images cropped twice
    assert sum(by_image[0][r] == by_image[1][r] for r in cropped_twice) <= 5
    assert all(i // 50 == 0 for i in FreshViewPerImage(50, 1, torch.Generator()))  # one view: the plain image only


class Counted:
    """Counts teacher networks loaded and online forward passes."""

    def __init__(self, monkeypatch):
        self.loads, self.forwards = 0, 0
        load, forward = online.load_network, online.OnlineTeacher.forward

        def counted_load(*args, **kwargs):
            self.loads += 1
            return load(*args, **kwargs)

        def counted_forward(teacher, images, items):
            self.forwards += 1
            return forward(teacher, images, items)
        monkeypatch.setattr(online, "load_network", counted_load)
        monkeypatch.setattr(online.OnlineTeacher, "forward", counted_forward)


def test_only_the_online_student_runs_the_teacher(project, monkeypatch):
    from stages.train import train
    monkeypatch.chdir(project)
    calls = Counted(monkeypatch)
    train("cached", project / "params.yaml")
    assert (calls.loads, calls.forwards) == (0, 0)
    train("live", project / "params.yaml")
    steps = 2 * (80 // 16)  # epochs × full batches of the 80 training images
    assert (calls.loads, calls.forwards) == (1, steps)  # once per step (the crops of its batch)
    cached = torch.load(project / "data/students/cached/seed-0.pt", weights_only=True)
    live = torch.load(project / "data/students/live/seed-0.pt", weights_only=True)
    assert "online" not in cached and live["online"] is True
    assert any(not torch.equal(cached["state_dict"][k], live["state_dict"][k]) for k in cached["state_dict"])


def test_online_students_need_a_teacher_network(project):
    with pytest.raises(ValueError, match="no_distill learns from labels alone"):
        from pipeline.params import StudentSpec
        StudentSpec(method="no_distill", teacher="t", online=True)
    imported = load_params_with({"teachers": {"t": {"arch": "resnet18", "features": "x.h5", "dim": 8}}}, project)
    with pytest.raises(RdistillError, match="imports its features"):
        online.load_online_teacher("t", imported.teachers["t"], [1.0], project / "t.pt", project / "w.h5",
                                   torch.zeros(1, 8))


def load_params_with(changes: dict, project):
    (project / "other.yaml").write_text(yaml.safe_dump({**PARAMS, **changes}))
    return load_params(project / "other.yaml")


def test_whitening_of_other_weights_is_refused(project):
    torch.manual_seed(1)
    torch.save(create("resnet18").state_dict(), project / "data/teachers/t.pt")  # retrained, not re-extracted
    with pytest.raises(RdistillError, match="learned from the features of other weights"):
        online_teacher(project)


@pytest.mark.slow
def test_killed_online_training_resumes_with_identical_weights(project):
    params = {**ONLINE, "train": {**ONLINE["train"], "student": {"arch": "resnet18", "image_size": 16,
                                                                 "random_erasing": 0.5},
                                  "override": {"epochs": 3, "batch_size": 16}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))  # the cache holds: only training changes
    scratch = project / "data/.partial/train-live"
    kill_once_written([RDISTILL, "train", "live"], project, scratch / "checkpoint-seed-0.pt")
    resumed = subprocess.run([RDISTILL, "train", "live"], cwd=project, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"resuming from .*checkpoint-seed-0.pt after epoch [12] of 3", resumed.stderr)
    resumed_weights = torch.load(project / "data/students/live/seed-0.pt", weights_only=True)["state_dict"]
    shutil.rmtree(project / "data/.partial/seeds")  # else the seed's student is reused, not trained again
    clean = subprocess.run([RDISTILL, "train", "live"], cwd=project, capture_output=True, text=True)
    assert clean.returncode == 0 and "resuming" not in clean.stderr
    assert_same_weights(resumed_weights, torch.load(project / "data/students/live/seed-0.pt",
                                                    weights_only=True)["state_dict"])
