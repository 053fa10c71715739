"""What `dvc repro` sees of the user's own files: fingerprints by content (ids relative to the root, sizes,
md5s), renewed by a stat per file, the same on every machine; and this machine's paths (machine.yaml)."""
import json
import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image

from pipeline.errors import RdistillError
from pipeline.local_paths import workspace_of
from pipeline.params import load_params
from stages.inputs import inputs
from stages.prepare import prepare


def own_list(folder: Path, rows: list[str]) -> Path:
    """Images a.png to d.png (distinct colours) and a list CSV of `rows` beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate("abcd"):
        Image.new("RGB", (12, 12), (40 * i, 80, 120)).save(folder / f"{name}.png")
    (folder / "list.csv").write_text("path,label,split\n" + "".join(f"{r}\n" for r in rows))
    return folder / "list.csv"


def project(tmp_path: Path, listed: Path, **teachers) -> Path:
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    params = {"prepare": {"source": "list", "list": str(listed)},
              "teachers": teachers or {"t": {"arch": "resnet18", "weights": "train"}},
              "mine": {"k": 1}, "whiten": {"n_components": 1}, "train": {"csd": {"k": 1}},  # what 2 images feed
              "evaluate": {"recall_at": [1]}}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder


def fingerprint(folder: Path) -> dict:
    return json.loads((folder / "data/inputs/images.json").read_text())


ROWS = ["a.png,0,train", "b.png,1,train", "c.png,1,test"]


def test_the_fingerprint_is_of_content_and_renewed_by_stat(tmp_path, monkeypatch):
    listed = own_list(tmp_path / "photos", ROWS)
    root = project(tmp_path, listed)
    monkeypatch.chdir(root)
    assert "3 images, 3 files hashed" in inputs(Path("params.yaml"))
    first = fingerprint(root)
    assert first["rows"] == 3 and first["rows_by_root"] == {"prepare.root": 3}
    assert "nothing changed" in inputs(Path("params.yaml")) and "0 files hashed" in inputs(Path("params.yaml"))
    # the same images elsewhere, copied with new times: the same fingerprint
    shutil.copytree(tmp_path / "photos", tmp_path / "moved", copy_function=shutil.copyfile)
    (root / "machine.yaml").write_text(f"prepare.list: {tmp_path / 'moved' / 'list.csv'}\n")
    assert "nothing changed" in inputs(Path("params.yaml")) and fingerprint(root) == first
    # an edited image, a relabelled row, an added row and a removed row each change it
    moved = tmp_path / "moved"

    def write_rows(rows):
        (moved / "list.csv").write_text("path,label,split\n" + "".join(f"{r}\n" for r in rows))

    seen = [first["sha256"]]
    Image.new("RGB", (12, 12), (1, 2, 3)).save(moved / "b.png")
    Image.new("RGB", (12, 12), (9, 9, 9)).save(moved / "d.png")
    for edit in (lambda: None, lambda: write_rows(["a.png,0,train", "b.png,2,train", "c.png,1,test"]),
                 lambda: write_rows(["a.png,0,train", "b.png,2,train", "c.png,1,test", "d.png,2,test"]),
                 lambda: write_rows(["a.png,0,train", "b.png,2,train", "d.png,2,test"])):
        edit()
        assert "changed: images" in inputs(Path("params.yaml"))
        seen.append(fingerprint(root)["sha256"])
    assert len(set(seen)) == len(seen)


def test_a_missing_image_is_named_with_its_row_and_root(tmp_path, monkeypatch):
    listed = own_list(tmp_path / "photos", ROWS)
    (tmp_path / "photos" / "b.png").unlink()
    monkeypatch.chdir(project(tmp_path, listed))
    with pytest.raises(RdistillError) as caught:
        inputs(Path("params.yaml"))
    assert str(caught.value).startswith(f"row 1 (b.png) under prepare.root ({tmp_path / 'photos'} on this machine): "
                                        f"{tmp_path / 'photos' / 'b.png'}: No such file")


def test_a_checkpoint_absent_here_keeps_its_committed_fingerprint(tmp_path, monkeypatch):
    listed = own_list(tmp_path / "photos", ROWS)
    (tmp_path / "w.pth").write_bytes(b"weights v1")
    root = project(tmp_path, listed, t={"arch": "resnet18", "weights": str(tmp_path / "w.pth")},
                   u={"arch": "resnet18", "weights": "ResNet18_Weights.IMAGENET1K_V1"})
    monkeypatch.chdir(root)
    inputs(Path("params.yaml"))
    committed = (root / "data/inputs/teachers/t.json").read_text()
    assert json.loads(committed)["weights"]["size"] == 10
    assert json.loads((root / "data/inputs/teachers/u.json").read_text())["weights"] == "ResNet18_Weights.IMAGENET1K_V1"
    (root / "machine.yaml").write_text(f"teachers.t.weights: {tmp_path / 'nowhere.pth'}\n")  # a teammate without it
    assert "nothing changed" in inputs(Path("params.yaml"))
    assert (root / "data/inputs/teachers/t.json").read_text() == committed
    (root / "machine.yaml").unlink()
    (tmp_path / "w.pth").write_bytes(b"weights v2")  # replaced in place
    assert "changed: t" in inputs(Path("params.yaml"))


def test_ids_are_relative_to_the_root_so_a_clone_at_another_depth_finds_the_images(tmp_path, monkeypatch):
    from stages.common import prepared_list
    listed = own_list(tmp_path / "photos", [*ROWS, "d.png,1,test"])  # a query with a positive
    root = project(tmp_path, listed)
    monkeypatch.chdir(root)
    prepare(Path("params.yaml"))
    text = (root / "data/prepared/list.csv").read_text()
    assert text.splitlines()[1].startswith("a.png,0,train,") and str(tmp_path) not in text
    deeper = tmp_path / "x" / "y" / "clone"
    shutil.copytree(root, deeper)
    monkeypatch.chdir(deeper)
    image_list, _ = prepared_list(load_params(Path("params.yaml")))
    assert [Path(p) for p in image_list.paths[:3]] == [tmp_path / "photos" / f"{n}.png" for n in "abc"]
    (deeper / "machine.yaml").write_text(f"prepare.root: {tmp_path / 'gone'}\n")
    with pytest.raises(RdistillError, match=r"its images lie under prepare.root, which is .*gone, not a folder on "
                                            r"this machine; set prepare.root in params.yaml or in machine.yaml"):
        prepared_list(load_params(Path("params.yaml")))


def test_machine_yaml_sets_paths_and_runtime_and_refuses_other_keys(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"prepare": {"source": "folder", "root": "../photos"},
                                                          "teachers": {"t": {"arch": "resnet18"}}}))
    params = load_params(tmp_path / "params.yaml")
    assert params.prepare.root == str(tmp_path.parent / "photos")  # anchored at the workspace, not the cwd
    (tmp_path / "machine.yaml").write_text("runtime.workers: 6\nteachers.t.weights: /models/t.pth\n")
    params = load_params(tmp_path / "params.yaml")
    assert params.runtime.workers == 6 and params.teachers["t"].weights == "/models/t.pth"
    (tmp_path / "machine.yaml").write_text("train.csd.k: 4\n")
    with pytest.raises(RdistillError, match=r"machine.yaml: train.csd.k: not a path or runtime parameter of"):
        load_params(tmp_path / "params.yaml")


def test_an_experiment_copy_reads_its_workspace_machine_file(tmp_path):
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "tmpabc123"
    copy.mkdir(parents=True)
    assert workspace_of(copy) == tmp_path and workspace_of(tmp_path) == tmp_path
    (copy / "params.yaml").write_text(yaml.safe_dump({"teachers": {"t": {"arch": "resnet18"}}}))
    (tmp_path / "machine.yaml").write_text("runtime.workers: 3\n")
    assert load_params(copy / "params.yaml").runtime.workers == 3


def test_an_older_params_file_is_told_where_a_moved_setting_went(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"teachers": {}, "train": {"workers": 2}}))
    with pytest.raises(RdistillError, match=r"train.workers: now runtime.workers \(it changes no output"):
        load_params(tmp_path / "params.yaml")
