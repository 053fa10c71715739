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


def test_revisited_scores_equal_a_loop_over_the_students_own_descriptors(tmp_path):
    """`rdistill evaluate` prints E/M/H in the papers' layout, and the printed and stored mAP are the benchmark's
    AP (METHODS §7), computed here by loops from the student's descriptors of the gallery and the cropped queries."""
    import json

    from pipeline.data.dataset import eval_transform, normalize_batch
    from pipeline.data.decode import load_rgb

    import numpy as np
    from PIL import Image

    gallery_names, _ = write_revisited(tmp_path / "roxford")
    noise = np.random.default_rng(0)
    for stem in gallery_names:  # distinct images, so that no two gallery scores tie
        pixels = noise.integers(0, 256, (30, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "roxford/jpg" / f"{stem}.jpg")
    params = {"prepare": {"source": "revisited", "root": str(tmp_path / "roxford"), "name": "roxford5k"},
              "teachers": {"t": {"arch": "resnet18"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    subprocess.run([RDISTILL, "prepare"], cwd=tmp_path, check=True, capture_output=True)
    prepared = read_list(tmp_path / "data/prepared/list.csv", {"prepare.root": tmp_path / "roxford"})
    assert prepared.bboxes[4] == (2.0, 3.0, 20.5, 25.0)  # the query is cropped to its bbx
    torch.manual_seed(1)
    net = create("resnet18", 8).eval()
    (tmp_path / "data/students/s").mkdir(parents=True)
    torch.save({"arch": "resnet18", "dim": 8, "image_size": 32, "method": "no_distill", "teacher": "t",
                "state_dict": net.state_dict()}, tmp_path / "data/students/s/seed-0.pt")
    result = subprocess.run([RDISTILL, "evaluate", "s"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "symmetric"
    assert re.fullmatch(r">> roxford5k: mAP E: \d+\.\d\d, M: \d+\.\d\d, H: \d+\.\d\d", lines[1])
    assert re.fullmatch(r">> roxford5k: mP@k\[1, 5, 10\] E: \[[\d. ]+\], M: \[[\d. ]+\], H: \[[\d. ]+\]", lines[2])
    stored = json.loads((tmp_path / "metrics/eval/s.json").read_text())["symmetric"]
    assert stored["hard"]["queries"] == 1  # query 0 has no hard positive: only query 1 counts in Hard

    def descriptor(row):
        image = load_rgb(prepared.paths[row])
        if prepared.bboxes[row] is not None:
            image = image.crop(tuple(round(v) for v in prepared.bboxes[row]))
        with torch.no_grad():
            return net(normalize_batch(eval_transform(32)(image)[None]))[0]

    gallery = torch.stack([descriptor(r) for r in range(4)])
    assert len(set((gallery @ descriptor(5)).tolist())) == 4  # no ties
    truth = [{"easy": [1], "hard": [], "junk": [0]}, {"easy": [2], "hard": [3], "junk": []}]  # write_revisited's
    expected = {}
    for setting in ("easy", "medium", "hard"):
        aps = []
        for q, gt in zip((4, 5), truth):
            positives = {"easy": gt["easy"], "medium": gt["easy"] + gt["hard"], "hard": gt["hard"]}[setting]
            ignored = {"easy": gt["junk"] + gt["hard"], "medium": gt["junk"], "hard": gt["junk"] + gt["easy"]}[setting]
            if not positives:
                continue
            ranking = [int(g) for g in torch.argsort(gallery @ descriptor(q), descending=True) if int(g) not in ignored]
            ap = 0.0
            for i, rank in enumerate(r for r, g in enumerate(ranking) if g in positives):
                before = i / rank if rank else 1.0
                ap += (before + (i + 1) / (rank + 1)) / 2 / len(positives)
            aps.append(ap)
        expected[setting] = sum(aps) / len(aps)
    for setting, value in expected.items():
        assert abs(stored[setting]["mAP"] - value) < 1e-6, (setting, stored[setting]["mAP"], value)
    assert f"mAP E: {100 * expected['easy']:.2f}, M: {100 * expected['medium']:.2f}, H: {100 * expected['hard']:.2f}" \
        in result.stdout
