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
    (lambda r: r["ensembles"]["whiten_mtd"].update(teachers=["resnet50", "vit"]),
     r"ensembles\.whiten_mtd\.teachers: unknown teacher 'vit'"),
    (lambda r: r["ensembles"].update(csd={"method": "ed"}), r"ensembles\.csd: the name is already a student's"),
    (lambda r: r["train"]["d3still"]["recipe"].update(average=[1.5]), r"train\.d3still\.recipe\.average\.0: Input should be less than or equal to 1 \(got 1\.5\)"),
    (lambda r: r["train"]["d3still"]["recipe"].update(optimizer="lbfgs"), r"train\.d3still\.recipe\.optimizer: Input should be 'adam' or 'sgd'"),
    (lambda r: r["mine"].update(nprobe="fast"),
     r"mine\.nprobe: Input should be a valid integer, .*, or Input should be 'auto' \(got 'fast'\)"),
    (lambda r: r["mine"].update(nprobe=0), r"mine\.nprobe: Input should be greater than 0, or Input should be 'auto' \(got 0\)"),
])
def test_bad_values_name_the_key_path(tmp_path, mutate, message):
    path = write(tmp_path, mutate)
    with pytest.raises(RdistillError, match=rf"params\.yaml: {message}"):
        load_params(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(RdistillError, match="nope.yaml: parameter file not found"):
        load_params(tmp_path / "nope.yaml")


def test_recipes_layer_each_field_over_the_one_below():
    from pipeline.params import RecipeOverride, TrainParams, recipe_of
    train = TrainParams.model_validate({"recipe": {"epochs": 7, "momentum": 0.5},
                                        "d3still": {"recipe": {"lr": 0.02}}, "override": {"batch_size": 32}})
    r = recipe_of(train, "d3still", RecipeOverride(epochs=3))
    # the paper's (sgd, wd 5e-4, warm-up, supervised), the method section's lr, the override's batch, the student's epochs
    assert (r.optimizer, r.weight_decay, r.supervised_weight) == ("sgd", 5e-4, 1.0)
    assert (r.lr, r.batch_size, r.epochs) == (0.02, 32, 3)
    assert r.momentum == 0.9  # the paper's momentum over the base recipe's 0.5
    plain = recipe_of(train, "no_distill", RecipeOverride())
    assert (plain.optimizer, plain.epochs, plain.momentum, plain.batch_size) == ("adam", 7, 0.5, 32)
    mixup = recipe_of(TrainParams(), "mixup_ap", RecipeOverride())
    assert (mixup.lr, mixup.schedule, mixup.epochs, mixup.average) == (1e-4, "exp", 30, [2 / 3, 1.0])
