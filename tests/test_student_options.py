"""D3still's student options through the train and evaluate stages: last stride 1, random erasing, CE + triplet."""
import json
from pathlib import Path

import torch
import yaml

from pipeline.data.views import RandomlyErased
from stages.evaluate import evaluate
from stages.train import train
from tests import test_resume
from tests.test_resume import PARAMS, fake_teacher_cache

project = test_resume.project  # a prepared list and a random teacher, in a temporary folder


def test_a_last_stride_one_student_with_random_erasing_trains_with_ce_triplet_and_evaluates(project, monkeypatch):
    params = {**PARAMS, "mine": {"k": 4},
              "train": {"student": {"arch": "resnet18", "image_size": 32, "last_stride": 1, "random_erasing": 0.5},
                        "override": {"epochs": 1, "batch_size": 16}, "d3still": {"k": 4}, "csd": {"k": 4}},
              "students": {"s": {"method": "d3still", "teacher": "t"}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    fake_teacher_cache(project)
    monkeypatch.chdir(project)
    erased = {"items": 0}
    original = RandomlyErased.__getitem__

    def counted(self, key):
        erased["items"] += 1
        return original(self, key)
    monkeypatch.setattr(RandomlyErased, "__getitem__", counted)
    train("s", Path("params.yaml"))
    checkpoint = torch.load(project / "data/students/s/seed-0.pt", weights_only=True)
    assert checkpoint["last_stride"] == 1
    recipe = json.loads((project / "metrics/train/s.json").read_text())["recipe"]
    assert (recipe["supervised"], recipe["supervised_weight"]) == ("ce_triplet", 1.0)  # D3still's paper recipe
    assert not any("classifier" in key for key in checkpoint["state_dict"])  # the supervised head stays behind
    assert erased["items"] == 2 * 80  # every input of the epoch and of the BatchNorm re-estimation pass
    evaluate("s", Path("params.yaml"))
    scores = json.loads((project / "metrics/eval/s.json").read_text())
    assert 0 <= scores["asymmetric"]["mAP"] <= 1


def test_the_paper_preset_without_cached_imagenet_weights_stops_in_one_line(project, tmp_path):
    import os
    import subprocess

    from tests.test_resume import RDISTILL
    params = {**PARAMS, "train": {"preset": "paper", "student": {"arch": "resnet18", "image_size": 16}},
              "students": {"s": {"method": "fitnet", "teacher": "t", "recipe": {"batch_size": 16}}}}  # 80 images
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    fake_teacher_cache(project)
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "empty-torch-cache")}
    result = subprocess.run([RDISTILL, "train", "s"], cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: weights 'ResNet18_Weights.IMAGENET1K_V1': not in the local torch cache "
        f"({tmp_path / 'empty-torch-cache/hub/checkpoints/resnet18-f37072fd.pth'}); rdistill never downloads, "
        f"place the file there or give a state_dict path")
    assert not (project / "data/students/s").exists() and not (project / "data/.partial/seeds/s").exists()
