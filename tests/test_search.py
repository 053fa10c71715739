"""`rdistill search`: top hits of a query among a folder's images; the gallery is described once."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from pipeline.errors import RdistillError
from pipeline.models.backbones import create
from pipeline.search import top_hits
from stages.search import search
from tests import test_resume
from tests.test_resume import PARAMS

project = test_resume.project  # prepared digit images in a temporary folder


@pytest.fixture
def student(project, monkeypatch):
    (project / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    torch.manual_seed(0)
    (project / "data/students/s").mkdir(parents=True)
    torch.save({"arch": "resnet18", "dim": 8, "image_size": 32, "method": "fitnet", "teacher": "t",
                "state_dict": create("resnet18", 8).state_dict()}, project / "data/students/s/seed-0.pt")
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
    # every hit, not only the first, is what exact search over the student's descriptors finds
    feats, ids = cached_descriptors(student)
    own = ids.index(str(query.relative_to(student / "gallery")))
    exact = np.sort(feats @ feats[own])[::-1][:5]
    assert [h["score"] for h in out["hits"]] == pytest.approx(exact.tolist(), abs=1e-5)
    for hit in out["hits"]:
        row = ids.index(str(Path(hit["path"]).resolve().relative_to((student / "gallery").resolve())))
        assert float(feats[row] @ feats[own]) == pytest.approx(hit["score"], abs=1e-5)
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


def cached_descriptors(project: Path) -> tuple[np.ndarray, list[str]]:
    """The gallery descriptors the search cached (one file per gallery folder) and their relative paths."""
    (path,) = (project / "data/search/s").glob("*.h5")
    with h5py.File(path) as f:
        return f["features"][:], [i.decode() if isinstance(i, bytes) else str(i) for i in f["ids"][:]]


def test_a_changed_student_or_scales_describes_the_gallery_again(student, caplog):
    caplog.set_level("INFO")
    query = sorted((student / "gallery/threes").iterdir())[0]
    search("s", Path("params.yaml"), Path("gallery"), query, top=3)
    caplog.clear()
    search("s", Path("params.yaml"), Path("gallery"), query, top=3)
    assert "reusing the gallery's descriptors" in caplog.text
    checkpoint = torch.load(student / "data/students/s/seed-0.pt", weights_only=False)
    torch.manual_seed(1)
    checkpoint["state_dict"] = create("resnet18", 8).state_dict()  # retrained: other weights
    torch.save(checkpoint, student / "data/students/s/seed-0.pt")
    caplog.clear()
    search("s", Path("params.yaml"), Path("gallery"), query, top=3)
    assert "describing" in caplog.text
    params = yaml.safe_load((student / "params.yaml").read_text())
    params.setdefault("evaluate", {})["scales"] = [1.0, 0.5]
    (student / "params.yaml").write_text(yaml.safe_dump(params))
    caplog.clear()
    search("s", Path("params.yaml"), Path("gallery"), query, top=3)
    assert "describing" in caplog.text


def test_a_large_gallery_is_searched_with_ivf_as_exact_search_finds(monkeypatch, rng):
    import faiss

    import pipeline.search
    from pipeline.index.search import dot_rounding_bound, recall_with_ties
    monkeypatch.setattr(pipeline.search, "EXACT_BELOW", 1000)
    monkeypatch.setattr(pipeline.search, "ROWS_PER_LIST", 64)
    centres = rng.standard_normal((40, 16))
    x = centres[rng.integers(0, 40, 4000)] + 0.2 * rng.standard_normal((4000, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    index = pipeline.search.gallery_index(x)
    assert faiss.extract_index_ivf(index).nlist == 64  # 4,000 / 64 rows a list
    queries = x[:200]
    found = np.stack([top_hits(index, q, 10)[1] for q in queries])
    exact = np.sort(queries @ x.T, axis=1)[:, ::-1][:, :10]
    recall = recall_with_ties(np.einsum("nd,nkd->nk", queries, x[found]), exact, dot_rounding_bound(queries, x))
    assert recall > 0.95  # 16 of 64 lists visited, exact inside them


def test_bad_folders_and_queries_are_named(student):
    (student / "empty").mkdir()
    for gallery, query, message in (("nowhere", "gallery/threes/0003.png", "nowhere: gallery folder not found"),
                                    ("empty", "gallery/threes/0003.png", "empty: no image files"),
                                    ("gallery", "missing.png", "missing.png: query image not found")):
        with pytest.raises(RdistillError, match=message):
            search("s", Path("params.yaml"), Path(gallery), Path(query))
