"""A small dataset of the user's own: `rdistill init` sizes the parameters to it and `dvc repro` completes;
the demo's parameters on it stop at `prepare` with one line (never a traceback), writing nothing."""
import shutil

import pytest
import yaml

from tests.test_own_data_walk import project_copy, write_photos
from tests.test_pipeline_e2e import PROJECT, ran_stages, sh


def demo_params_on(photos, validation) -> dict:
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["prepare"] = {"source": "folder", "root": str(photos), "validation": validation}
    return params


@pytest.mark.parametrize("validation, line", [
    (200, "error: prepare.validation: 200 of 30 training images leaves none to train on; set a share (e.g. 0.2) "
          "or a smaller count"),
    (0.2, "error: train.override.batch_size: a batch of 128 for students.csd, but 24 training images (every "
          "batch is full; prepare.validation holds out 6 more); set a batch size of at most 24"),
])
def test_the_demo_parameters_on_sixty_photos_stop_at_prepare_in_one_line(tmp_path, validation, line):
    write_photos(tmp_path / "photos")  # 3 classes of 20: 30 training images at the folder importer's half
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(demo_params_on(tmp_path / "photos", validation)))
    from tests.test_bad_inputs import last_line, rdistill
    result = rdistill(tmp_path, "prepare")
    assert result.returncode == 1 and last_line(result) == line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data/prepared/list.csv").exists()


@pytest.mark.slow
def test_dvc_repro_on_thirty_photos_completes_with_init_and_stops_at_prepare_with_the_demo(tmp_path):
    import tests.test_own_data_walk as walk
    photos = tmp_path / "photos"
    walk.PER_CLASS, per_class = 10, walk.PER_CLASS  # 30 photos in 3 classes
    try:
        write_photos(photos)
    finally:
        walk.PER_CLASS = per_class
    repo = project_copy(tmp_path / "repo")
    sh("git", "init", "-q", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)
    (repo / "params.yaml").write_text(yaml.safe_dump(demo_params_on(photos, 200)))
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "the demo's parameters on 30 photos", cwd=repo)
    import os
    import subprocess
    import sys
    from pathlib import Path
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "prepare.validation: 200 of 15 training images leaves none to train on" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert not (ran_stages(result.stdout) - {"data/dvc.yaml:inputs", "prepare"})

    # `rdistill init` sizes every parameter to the 30 photos; a teacher fitted here (no download offline).
    sh("rdistill", "init", "--force", "--images", str(photos), cwd=repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["teachers"]["resnet50"].update(arch="resnet18", weights="train", image_size=32)
    params["teacher"]["epochs"] = 1
    params["extract"]["scales"] = [1.0]
    params["train"]["student"]["image_size"] = 16
    params["train"]["recipe"]["epochs"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = ran_stages(sh("dvc", "repro", cwd=repo))
    assert {"prepare", "teacher@resnet50", "mine@resnet50", "train@csd", "evaluate@csd", "report"} <= ran
    assert (repo / "reports/results.md").is_file()
    shutil.rmtree(repo / ".dvc/cache", ignore_errors=True)
