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
    (lambda r: r["train"]["d3still"].update(recipe={"average": [1.5]}), r"train\.d3still\.recipe\.average\.0: Input should be less than or equal to 1 \(got 1\.5\)"),
    (lambda r: r["train"]["d3still"].update(recipe={"optimizer": "lbfgs"}), r"train\.d3still\.recipe\.optimizer: Input should be 'adam' or 'sgd'"),
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


# METHODS §9, written out by hand: (optimizer, lr, momentum, schedule, warm-up share, weight decay, batch,
# epochs, averaged shares, supervised weight, supervised term)
D3STILL_PAPER = ("sgd", 1e-2, 0.9, "cosine", 10 / 120, 5e-4, 512, 120, [], 1.0, "ce_triplet")
WHITEN_MTD_PAPER = ("adam", 1e-3, 0.9, "cosine", 0.0, 1e-6, 256, 10, [], 0.0, "normalised_softmax")
PAPER_RECIPES = {
    "csd": ("adam", 1e-3, 0.9, "linear", 0.0, 1e-6, 128, 10, [], 0.0, "normalised_softmax"),
    "d3still": D3STILL_PAPER, "fitnet": D3STILL_PAPER, "pair": D3STILL_PAPER, "second_order": D3STILL_PAPER,
    "rkd": D3STILL_PAPER, "pkt": D3STILL_PAPER,
    "whiten_mtd": WHITEN_MTD_PAPER, "ed": WHITEN_MTD_PAPER, "contrastive": WHITEN_MTD_PAPER,
    "mixup_ap": ("adam", 1e-4, 0.9, "exp", 0.0, 1e-6, 1000, 30, [2 / 3, 1.0], 0.0, "normalised_softmax"),
}
PAPER_SETTINGS = {
    "csd": {"variant": "kl", "tau_g": 0.01, "tau_q": 1.0},
    "d3still": {"k": 10, "m": 0.1, "alpha": 100.0, "beta": 5.0, "gamma": 1.0},
    "whiten_mtd": {"fusion": "max-min", "tau_s": 0.05, "tau_t": 0.05, "both_directions": True, "teacher_target": True},
    "mixup_ap": {"rounds": 10, "alpha": 1.0, "tau": 0.75, "n_bins": 25},
    "pkt": {"weight": 3e4},
}


def test_the_paper_preset_resolves_every_method_to_its_papers_recipe_and_settings():
    from pipeline.methods import METHODS
    from pipeline.params import RecipeOverride, method_settings, recipe_of
    demo = load_params(PROJECT_PARAMS).train
    assert demo.preset == "custom" and recipe_of(demo, "d3still", RecipeOverride()).epochs == 3  # the demo's short runs
    paper = demo.model_copy(update={"preset": "paper"})
    assert set(PAPER_RECIPES) == set(METHODS) - {"no_distill"}
    for method, expected in PAPER_RECIPES.items():
        r = recipe_of(paper, method, RecipeOverride())
        got = (r.optimizer, r.lr, r.momentum, r.schedule, r.warmup, r.weight_decay, r.batch_size, r.epochs, r.average,
               r.supervised_weight, r.supervised)
        assert got == expected, method
    for method, expected in PAPER_SETTINGS.items():
        settings = method_settings(paper, method)
        assert {key: getattr(settings, key) for key in expected} == expected, method
    # a student's own changes still apply on top of its paper
    assert recipe_of(paper, "csd", RecipeOverride(epochs=5)).epochs == 5


def declared_keys() -> set[str]:
    """Every params key a dvc.yaml stage declares, its ${key} / ${item.method} / ${item.teacher} resolved over the demo's
    teachers, students or ensembles (the stage's foreach)."""
    stages = yaml.safe_load((PROJECT_PARAMS.parent / "dvc.yaml").read_text())["stages"]
    raw = yaml.safe_load(PROJECT_PARAMS.read_text())
    keys = set()
    for stage in stages.values():
        entries = (stage.get("do") or stage).get("params", [])
        if "foreach" not in stage:
            keys.update(entries)
            continue
        items = raw[stage["foreach"].strip("${}")] or {}
        for name, item in items.items():
            item = item if isinstance(item, dict) else {}
            keys.update(e.replace("${key}", name).replace("${item.method}", item.get("method", ""))
                        .replace("${item.teacher}", item.get("teacher", "")) for e in entries)
    return keys


MISSING = object()


def at(tree: dict, path: str):
    """The value at a dotted key path of nested dicts, or MISSING."""
    for part in path.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return MISSING
        tree = tree[part]
    return tree


def leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from leaves(value, path + ".")
        else:
            yield path, value


def test_project_params_state_only_what_the_demo_changes():
    """A key in params.yaml is there because its value differs from the schema's default, or because a
    stage declares it (DVC tracks declared keys, so they must exist); the rest comes from the schema."""
    from pipeline.params import Params
    raw = yaml.safe_load(PROJECT_PARAMS.read_text())
    defaults = Params.model_validate({"teachers": {}}).model_dump()
    declared = declared_keys()

    missing = sorted(key for key in declared if at(raw, key) is MISSING)
    assert not missing, f"dvc.yaml declares params that params.yaml lacks (DVC refuses to run): {missing}"
    restated = [path for path, value in leaves(raw)
                if path not in declared and value == at(defaults, path) and value != {}]
    assert not restated, f"params.yaml restates defaults: {restated}"
    assert {"seed", "train.preset", "train.seeds", "mine", "train.csd"} <= declared


@pytest.mark.parametrize("source", ["project", "defaults"])
def test_rdistill_params_lists_every_parameter_and_reads_back_the_same(tmp_path, source):
    from pipeline.params import Params
    from pipeline.params_listing import annotated_yaml
    params = load_params(PROJECT_PARAMS) if source == "project" else Params.model_validate({"teachers": {"t": {"arch": "resnet18"}}})
    text = annotated_yaml(params)
    assert Params.model_validate(yaml.safe_load(text)) == params
    lines = text.splitlines()
    assert "  refine: 8  # > 0: each row's K neighbours joined with the K of its `refine` nearest and re-ranked " \
           "exactly (one round of NN-descent); unused with exact search" in lines
    assert any(line.startswith("    recipe: {") and "the method's paper recipe" in line for line in lines)
    if source == "project":
        assert "  power: 0.25  # eigenvalue power: 0.5 plain whitening; 0.25 square-rooted PCA (more robust with " \
               "few images)" in lines
