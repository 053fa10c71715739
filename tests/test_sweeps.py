"""Every sweep the README shows is one DVC accepts on the project's params.yaml, and a project started with
`rdistill init` accepts `-S` on any key: DVC's own override parser applied to copies of the files."""
import re
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.params import Params, load_params

PROJECT = Path(__file__).resolve().parents[1]


def readme_sweeps() -> list[list[str]]:
    """The `-S` arguments of every `dvc exp run` in the README, one list per command."""
    commands = re.findall(r"dvc exp run[^`\n]*", (PROJECT / "README.md").read_text())
    return [found for command in commands if (found := re.findall(r"-S\s+'?([^'\s]+)'?", command))]


def applied(params_file: Path, overrides: list[str]) -> list[Params]:
    """The params each experiment of a sweep runs with, as DVC writes them (errors as DVC raises them)."""
    from dvc.utils.hydra import apply_overrides, get_hydra_sweeps
    runs = []
    for i, sweep in enumerate(get_hydra_sweeps({params_file.name: overrides})):
        copy = params_file.with_name(f"sweep-{i}.yaml")
        shutil.copy(params_file, copy)
        apply_overrides(copy, sweep[params_file.name])
        runs.append(load_params(copy))
    return runs


def test_the_readme_shows_sweeps():
    assert len(readme_sweeps()) >= 5


@pytest.mark.parametrize("overrides", readme_sweeps(), ids=lambda o: " ".join(o))
def test_every_readme_sweep_applies_to_the_projects_params(tmp_path, overrides):
    shutil.copy(PROJECT / "params.yaml", tmp_path / "params.yaml")
    runs = applied(tmp_path / "params.yaml", overrides)
    base = load_params(PROJECT / "params.yaml")
    assert runs and all(run != base for run in runs)  # each experiment changes something


def test_a_key_the_demo_does_not_state_needs_a_plus_and_dvc_says_so(tmp_path):
    from dvc.exceptions import InvalidArgumentError
    shutil.copy(PROJECT / "params.yaml", tmp_path / "params.yaml")
    with pytest.raises(InvalidArgumentError):
        applied(tmp_path / "params.yaml", ["train.d3still.alpha=200"])
    (run,) = applied(tmp_path / "params.yaml", ["+train.d3still.alpha=200"])
    assert run.train.d3still.alpha == 200


def test_init_writes_every_parameter_so_any_key_can_be_swept(tmp_path):
    from stages.init import init
    photos = tmp_path / "photos"
    for label in range(2):
        (photos / f"c{label}").mkdir(parents=True)
        for i in range(50):
            (photos / f"c{label}" / f"{i}.jpg").write_bytes(b"")  # counted, not decoded
    init(tmp_path / "params.yaml", photos, None, None, force=False)
    written = load_params(tmp_path / "params.yaml")
    assert written.prepare.root == str(photos) and written.prepare.validation == 0.2
    assert written.teachers["resnet50"].weights == "ResNet50_Weights.IMAGENET1K_V2"  # named, never trained silently
    for overrides in (["train.csd.k=16"], ["train.d3still.alpha=200"], ["train.override.epochs=3"],
                      ["mine.shortlist=512"], ["runtime.workers=4"], ["train.csd.tau_q=0.1,0.2"]):
        assert applied(tmp_path / "params.yaml", overrides)

    def leaves(node, prefix=()):
        for key, value in node.items():
            if isinstance(value, dict) and value:
                yield from leaves(value, (*prefix, key))
            else:
                yield (*prefix, key)
    raw = yaml.safe_load((tmp_path / "params.yaml").read_text())
    dumped = written.model_dump()
    missing = [path for path in leaves(dumped) if path[0] not in ("ensembles",) and not _has(raw, path)]
    assert not missing, missing


def _has(raw: dict, path: tuple) -> bool:
    for key in path:
        if not isinstance(raw, dict) or key not in raw:
            return False
        raw = raw[key]
    return True


def test_init_refuses_to_replace_a_params_file_and_a_folder_without_images(tmp_path):
    from pipeline.errors import RdistillError
    from stages.init import init
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    with pytest.raises(RdistillError, match="params.yaml: already exists; --force replaces it"):
        init(tmp_path / "params.yaml", tmp_path, None, None, force=False)
    with pytest.raises(RdistillError, match="no class sub-folders"):
        init(tmp_path / "params.yaml", tmp_path, None, None, force=True)
