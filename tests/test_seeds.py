"""Students trained once per seed: an added seed trains only that seed, evaluation keeps every seed's scores."""
import json
from pathlib import Path

import h5py
import numpy as np
import yaml

from stages.evaluate import evaluate
from stages.train import train
from tests import test_resume
from tests.test_resume import PARAMS, fake_teacher_cache

project = test_resume.project  # a prepared list and a random teacher, in a temporary folder


def params_with(seeds):
    return {**PARAMS, "mine": {"k": 4}, "students": {"s": {"method": "fitnet", "teacher": "t"}},
            "train": {"student": {"arch": "resnet18", "image_size": 16}, "seeds": seeds, "csd": {"k": 4},
                      "override": {"epochs": 1, "batch_size": 16}}}


def test_an_added_seed_trains_only_that_seed_and_evaluation_scores_every_seed(project, monkeypatch, caplog):
    caplog.set_level("INFO")
    fake_teacher_cache(project)
    monkeypatch.chdir(project)
    (project / "params.yaml").write_text(yaml.safe_dump(params_with([3])))
    train("s", Path("params.yaml"))
    first = (project / "data/students/s/seed-3.pt").read_bytes()
    (project / "params.yaml").write_text(yaml.safe_dump(params_with([3, 5])))
    caplog.clear()
    train("s", Path("params.yaml"))
    assert "student s seed 3: trained earlier with the same inputs, reused" in caplog.text
    assert "training student s seed 5" in caplog.text and "training student s seed 3" not in caplog.text
    assert sorted(p.name for p in (project / "data/students/s").iterdir()) == ["seed-3.pt", "seed-5.pt"]
    assert (project / "data/students/s/seed-3.pt").read_bytes() == first
    weights = [__import__("torch").load(project / f"data/students/s/seed-{s}.pt", weights_only=True)["state_dict"]
               for s in (3, 5)]
    assert not all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])  # another seed, another student
    recorded = json.loads((project / "metrics/train/s.json").read_text())
    assert recorded["seeds"] == [3, 5] and set(recorded["history_by_seed"]) == {"3", "5"}

    evaluate("s", Path("params.yaml"))
    scores = json.loads((project / "metrics/eval/s.json").read_text())
    by_seed = [scores["by_seed"][s]["symmetric"]["mAP"] for s in ("3", "5")]
    assert scores["seeds"] == [3, 5] and scores["symmetric"]["mAP"] == np.mean(by_seed) and by_seed[0] != by_seed[1]
    with h5py.File(project / "data/queries/student/s.h5") as f:
        per_query = f["symmetric"][()]
        assert f["seeds"][()].tolist() == [3, 5] and per_query.shape == (2, len(f["query_rows"]))
    assert np.allclose(np.nanmean(per_query, axis=1), by_seed, rtol=0, atol=1e-12)

    params = params_with([3, 5])
    params["train"]["override"]["epochs"] = 2  # another recipe: no seed is reused
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    caplog.clear()
    train("s", Path("params.yaml"))
    assert "reused" not in caplog.text and caplog.text.count("training student s seed") == 2
