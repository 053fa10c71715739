"""`rdistill search`: top hits of a query among a folder's images; the gallery is described once."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from pipeline.errors import RdistillError
from pipeline.models.backbones import create
from stages.search import search
from tests import test_resume
from tests.test_resume import PARAMS

project = test_resume.project  # prepared digit images in a temporary folder


@pytest.fixture
def student(project, monkeypatch):
    (project / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    torch.manual_seed(0)
    (project / "data/students").mkdir(parents=True)
    torch.save({"arch": "resnet18", "dim": 8, "image_size": 32, "method": "fitnet", "teacher": "t",
                "state_dict": create("resnet18", 8).state_dict()}, project / "data/students/s.pt")
    shutil.copytree(project / "data/prepared/images/3", project / "gallery/threes")
    shutil.copytree(project / "data/prepared/images/7", project / "gallery/sevens")
    monkeypatch.chdir(project)
    return project


def test_a_gallery_image_finds_itself_first_and_the_gallery_is_described_once(student, caplog):
    caplog.set_level("INFO")
    query = sorted((student / "gallery/sevens").iterdir())[2]
    out = json.loads(search("s", Path("params.yaml"), Path("gallery"), query, top=5, as_json=True))
    n_images = len(list((student / "gallery").rglob("*.png")))
    assert [h["rank"] for h in out["hits"]] == [1, 2, 3, 4, 5]
    assert Path(out["hits"][0]["path"]).resolve() == query.resolve() and out["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert all(a["score"] >= b["score"] for a, b in zip(out["hits"], out["hits"][1:]))
    assert Image.open(out["grid"]).size == (6 * 76 + 4, 80)  # the query and its 5 hits
    assert f"describing {n_images} gallery images" in caplog.text
    result = subprocess.run([str(Path(sys.executable).parent / "rdistill"), "search", "s", "--gallery", "gallery",
                             "--query", str(query), "--top", "3"], cwd=student, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "reusing the gallery's descriptors" in result.stderr and "describing" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("s: top 3 of ") and lines[1] == "rank  score     image" and len(lines) == 6
    assert lines[2].startswith("   1  1.0000  gallery/sevens/")
    caplog.clear()
    extra = student / "gallery/sevens/new.png"
    shutil.copy(query, extra)
    os.utime(extra, ns=(1, 1))
    search("s", Path("params.yaml"), Path("gallery"), query, top=3)
    assert f"describing {n_images + 1} gallery images" in caplog.text  # the folder changed


def test_bad_folders_and_queries_are_named(student):
    (student / "empty").mkdir()
    for gallery, query, message in (("nowhere", "gallery/threes/0003.png", "nowhere: gallery folder not found"),
                                    ("empty", "gallery/threes/0003.png", "empty: no image files"),
                                    ("gallery", "missing.png", "missing.png: query image not found")):
        with pytest.raises(RdistillError, match=message):
            search("s", Path("params.yaml"), Path(gallery), Path(query))
