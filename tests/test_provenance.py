import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from pipeline.data.h5 import feature_writer
from pipeline.data.listfile import write_list
from pipeline.io import sha256_file

RDISTILL = str(Path(sys.executable).parent / "rdistill")


def test_whitening_refuses_features_of_another_teacher(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"teachers": {"a": {"arch": "resnet18"},
                                                                       "b": {"arch": "resnet34"}}}))
    listed = tmp_path / "data/prepared/list.csv"
    write_list(listed, [f"{i}.png" for i in range(4)], [0, 1, 0, 1], ["train"] * 4)
    attrs = {"teacher": "b", "list_sha256": sha256_file(listed), "weights_sha256": "ff"}
    with feature_writer(tmp_path / "data/features/a.h5", [f"{i}.png" for i in range(4)], attrs) as writer:
        writer.write(np.arange(4), np.eye(4, dtype=np.float32))
    before = (tmp_path / "data/features/a.h5").read_bytes()
    result = subprocess.run([RDISTILL, "whiten", "a"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: data/features/a.h5: provenance teacher='b' does not match the expected 'a'; "
        "rerun the stage that writes it")
    assert (tmp_path / "data/features/a.h5").read_bytes() == before
    assert not (tmp_path / "data/whitening").exists()


def test_features_of_another_list_are_refused(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"teachers": {"a": {"arch": "resnet18"}}}))
    listed = tmp_path / "data/prepared/list.csv"
    write_list(listed, ["0.png", "1.png"], [0, 1], ["train", "train"])
    attrs = {"teacher": "a", "list_sha256": "0" * 64, "weights_sha256": "ff"}
    with feature_writer(tmp_path / "data/features/a.h5", ["0.png", "1.png"], attrs) as writer:
        writer.write(np.arange(2), np.eye(2, dtype=np.float32))
    result = subprocess.run([RDISTILL, "whiten", "a"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1 and "provenance list_sha256='0000" in result.stderr
