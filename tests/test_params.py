from pathlib import Path

import pytest
import yaml

from pipeline.errors import RdistillError
from pipeline.params import load_params

PROJECT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def write(tmp_path, mutate):
    raw = yaml.safe_load(PROJECT_PARAMS.read_text())
    mutate(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_project_params_are_valid():
    params = load_params(PROJECT_PARAMS)
    assert len(params.teachers) >= 2
    assert len({t.arch for t in params.teachers.values()}) >= 2


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["train"]["csd"].update(tau_g=0), r"train\.csd\.tau_g: Input should be greater than 0 \(got 0\)"),
    (lambda r: r["train"].update(epoch=3), r"train\.epoch: Extra inputs are not permitted"),
    (lambda r: r["mine"].update(k="many"), r"mine\.k: Input should be a valid integer"),
    (lambda r: r["students"]["csd"].update(teacher="vit"), r"students\.csd\.teacher: unknown teacher 'vit'"),
    (lambda r: r["train"]["csd"].update(k=1000), r"train\.csd\.k: 1000 exceeds the 64 neighbours mined"),
    (lambda r: r["train"]["csd"].update(variant="l3"), r"train\.csd\.variant: Input should be 'kl', 'l1' or 'l2'"),
])
def test_bad_values_name_the_key_path(tmp_path, mutate, message):
    path = write(tmp_path, mutate)
    with pytest.raises(RdistillError, match=rf"params\.yaml: {message}"):
        load_params(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(RdistillError, match="nope.yaml: parameter file not found"):
        load_params(tmp_path / "nope.yaml")
