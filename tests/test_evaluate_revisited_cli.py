"""`rdistill prepare` + `rdistill evaluate` on a revisited-Oxford-format fixture."""
import re
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from pipeline.data.listfile import read_list
from pipeline.models.backbones import create
from tests.data.importers.test_importers import write_revisited

RDISTILL = str(Path(sys.executable).parent / "rdistill")


def test_evaluate_prints_easy_medium_hard_in_the_papers_layout(tmp_path):
    write_revisited(tmp_path / "roxford")
    params = {"prepare": {"source": "revisited", "root": str(tmp_path / "roxford"), "name": "roxford5k"},
              "teachers": {"t": {"arch": "resnet18"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    subprocess.run([RDISTILL, "prepare"], cwd=tmp_path, check=True, capture_output=True)
    prepared = read_list(tmp_path / "data/prepared/list.csv")
    assert prepared.bboxes[4] == (2.0, 3.0, 20.5, 25.0)  # the query is cropped to its bbx
    torch.manual_seed(0)
    net = create("resnet18", 8)
    checkpoint = {"arch": "resnet18", "dim": 8, "image_size": 32, "method": "no_distill", "teacher": "t",
                  "state_dict": net.state_dict()}
    (tmp_path / "data/students").mkdir(parents=True)
    torch.save(checkpoint, tmp_path / "data/students/s.pt")
    result = subprocess.run([RDISTILL, "evaluate", "s"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "symmetric"
    assert re.fullmatch(r">> roxford5k: mAP E: \d+\.\d\d, M: \d+\.\d\d, H: \d+\.\d\d", lines[1])
    assert re.fullmatch(r">> roxford5k: mP@k\[1, 5, 10\] E: \[[\d. ]+\], M: \[[\d. ]+\], H: \[[\d. ]+\]", lines[2])
    # query 0 has no hard positive: only query 1 counts in Hard
    assert '"queries": 1' in (tmp_path / "metrics/eval/s.json").read_text()
