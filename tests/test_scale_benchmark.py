"""The scale benchmark's code path, at a tiny size: every stage runs on generated features and reports."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_scale_benchmark_runs_every_stage_and_appends_its_figures(tmp_path):
    earlier = {"rows": 2000, "gallery": 4096, "stages": {}}  # a run already recorded: the new one is appended
    (tmp_path / "scale.json").write_text(json.dumps({"runs": [earlier]}))
    command = [sys.executable, "-m", "benchmarks.scale", "--rows", "3000", "--gallery", "4096", "--dim", "64",
               "--work", str(tmp_path / "work"), "--results", str(tmp_path), "--no-plot"]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, timeout=600)
    runs = json.loads((tmp_path / "scale.json").read_text())["runs"]
    assert [r["rows"] for r in runs] == [2000, 3000] and runs[0] == earlier  # appended, one entry per --rows
    stages = runs[1]["stages"]
    assert set(stages) == {"whiten", "mine", "train_targets", "evaluate_teacher", "evaluate_em", "evaluate"}
    for figures in stages.values():
        assert figures["seconds"] > 0 and 0.05 < figures["peak_rss_gib"] < 8
    assert stages["mine"]["index"] == "Flat" and stages["mine"]["recall_at_k"] == 1.0  # exact at this size
    assert stages["evaluate"]["mAP_medium"] > 0.5  # queries are noisy copies of gallery images: found first
    assert stages["train_targets"]["items"] == 3000
    assert not (tmp_path / "work" / "rows-3000").exists()  # the generated project is removed after its run
