"""Bad input gets one line naming the file, row, key or value, a non-zero exit, and no damage."""
import errno
import json
import re
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import yaml
from PIL import Image

from pipeline.data.h5 import feature_writer
from tests.reference import read_features
from pipeline.data.listfile import write_list
from pipeline.io import sha256_file

RDISTILL = str(Path(sys.executable).parent / "rdistill")


def rdistill(cwd, *args):
    return subprocess.run([RDISTILL, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def last_line(result):
    return result.stderr.strip().splitlines()[-1]


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def user_list(tmp_path, rows, params_extra=None):
    """Images under tmp/images, a list CSV, and params pointing prepare at it."""
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    (tmp_path / "images/list.csv").write_text("path,label,split\n" + "".join(f"{r}\n" for r in rows))
    params = {"prepare": {"source": "list", "list": "images/list.csv", **(params_extra or {})},
              "teachers": {"t": {"arch": "resnet18"}},
              "whiten": {"n_components": 1}, "mine": {"k": 1}, "train": {"csd": {"k": 1}},  # sizes a few images feed
              "evaluate": {"recall_at": [1]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return images


def good(images, name):
    Image.new("RGB", (8, 8), (1, 2, 3)).save(images / name)


def test_bad_image_fails_by_default_and_keeps_the_previous_list(tmp_path):
    images = user_list(tmp_path, ["a.png,0,train", "b.png,1,train"])
    good(images, "a.png")
    good(images, "b.png")
    assert rdistill(tmp_path, "prepare").returncode == 0
    before = digest(tmp_path / "data")
    (images / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = rdistill(tmp_path, "prepare")
    assert result.returncode == 1
    assert last_line(result) == ("error: images/b.png: cannot decode image (Truncated File Read) (row 1); "
                                 "set prepare.on_bad_image: skip to leave such images out")
    assert digest(tmp_path / "data") == before


def test_skip_policy_lists_and_excludes_bad_images(tmp_path):
    images = user_list(tmp_path, ["a.png,0,train", "gone.png,1,train", "b.png,1,train", "c.png,1,test", "d.png,1,test"],
                       {"on_bad_image": "skip"})
    for name in ("a.png", "b.png", "c.png", "d.png"):
        good(images, name)
    result = rdistill(tmp_path, "prepare")
    assert result.returncode == 0, result.stderr
    assert "left out 1 of 5 images" in result.stderr
    listed = (tmp_path / "data/prepared/list.csv").read_text().splitlines()
    assert [line.split(",")[0].rsplit("/", 1)[-1] for line in listed[1:]] == ["a.png", "b.png", "c.png", "d.png"]
    skipped = (tmp_path / "data/prepared/skipped.csv").read_text().splitlines()
    assert skipped[0] == "row,reason" and skipped[1].startswith("1,") and "gone.png: image file not found" in skipped[1]


@pytest.mark.parametrize("rows, message", [
    (["a.png,0,train", "a.png,1,test"], "images/list.csv:3: duplicate row 'a.png' (first on line 2)"),
    (["a.png,0,validation"], "images/list.csv:2: unknown split 'validation' (expected one of train, query, gallery, test, val)"),
    (["../outside.png,0,train"], "images/list.csv: row 0 path '../outside.png' lies outside the dataset root images"),
    (["a.png,zero,train"], "images/list.csv:2: label 'zero' is not an integer"),
])
def test_list_file_errors_name_file_and_line(tmp_path, rows, message):
    images = user_list(tmp_path, rows)
    good(images, "a.png")
    good(tmp_path, "outside.png")
    result = rdistill(tmp_path, "prepare")
    assert result.returncode == 1 and last_line(result) == f"error: {message}"


def test_missing_labels_are_refused_where_training_needs_them(tmp_path):
    images = user_list(tmp_path, ["a.png,0,train", "b.png,,train", "e.png,1,train", "c.png,1,test", "d.png,1,test"])
    for name in ("a.png", "b.png", "c.png", "d.png", "e.png"):
        good(images, name)
    assert rdistill(tmp_path, "prepare").returncode == 0
    result = rdistill(tmp_path, "teacher", "t")
    assert result.returncode == 1
    assert last_line(result) == ("error: data/prepared/list.csv: row 1 (b.png) has no label, "
                                 "needed for training teacher t")


def features_file(path, feats, attrs):
    with feature_writer(path, [f"{i}.png" for i in range(len(feats))], attrs) as writer:
        writer.write(np.arange(len(feats)), feats)


def prepared(tmp_path, n, splits=None, params=None):
    listed = tmp_path / "data/prepared/list.csv"
    write_list(listed, [f"{i}.png" for i in range(n)], [i % 2 for i in range(n)], splits or ["train"] * n)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"teachers": {"t": {"arch": "resnet18"}},
                                                          "whiten": {"n_components": 2}, **(params or {})}))
    return {"teacher": "t", "arch": "resnet18", "list_sha256": sha256_file(listed), "weights_sha256": "ff"}


def test_all_zero_feature_rows_are_refused_at_load(tmp_path):
    attrs = prepared(tmp_path, 4)
    feats = np.eye(4, dtype=np.float32)
    feats[2] = 0
    features_file(tmp_path / "data/features/t.h5", feats, attrs)
    result = rdistill(tmp_path, "whiten", "t")
    assert result.returncode == 1 and last_line(result) == "error: data/features/t.h5: row 2 is all zeros"


def test_truncated_hdf5_is_named_before_use(tmp_path):
    attrs = prepared(tmp_path, 4)
    path = tmp_path / "data/features/t.h5"
    features_file(path, np.eye(4, dtype=np.float32), attrs)
    path.write_bytes(path.read_bytes()[:1000])
    result = rdistill(tmp_path, "whiten", "t")
    assert result.returncode == 1 and last_line(result).startswith("error: data/features/t.h5: unreadable HDF5 file")
    assert not (tmp_path / "data/whitened").exists()


def test_more_components_than_training_images_span_is_refused(tmp_path, rng):
    attrs = prepared(tmp_path, 12, ["train"] * 5 + ["test"] * 7, {"whiten": {"n_components": 8}})
    feats = rng.standard_normal((12, 16)).astype(np.float32)
    features_file(tmp_path / "data/features/t.h5", feats / np.linalg.norm(feats, axis=1, keepdims=True), attrs)
    result = rdistill(tmp_path, "whiten", "t")
    assert result.returncode == 1
    assert last_line(result) == ("error: whiten.n_components: 8, but 5 training images span at most 4 directions; "
                                 "set whiten.n_components ≤ 4")
    assert not (tmp_path / "data/whitened").exists() and not (tmp_path / "data/whitening").exists()


def test_features_without_variance_are_refused_before_whitening(tmp_path):
    attrs = prepared(tmp_path, 12, ["train"] * 8 + ["test"] * 4, {"whiten": {"n_components": 2}})
    features_file(tmp_path / "data/features/t.h5", np.full((12, 16), 0.25, dtype=np.float32), attrs)
    result = rdistill(tmp_path, "whiten", "t")
    assert result.returncode == 1
    assert last_line(result).startswith("error: data/features/t.h5: the 8 training features are all alike")
    assert not (tmp_path / "data/whitened").exists()


def test_more_components_than_dimensions_is_refused(tmp_path):
    attrs = prepared(tmp_path, 6, params={"whiten": {"n_components": 8}})
    features_file(tmp_path / "data/features/t.h5", np.eye(6, 4, dtype=np.float32) + 0.1, attrs)
    result = rdistill(tmp_path, "whiten", "t")
    assert result.returncode == 1 and last_line(result) == "error: whiten.n_components: 8 exceeds the feature dimension 4"


def test_more_neighbours_than_training_images_is_refused(tmp_path):
    attrs = prepared(tmp_path, 6, params={"mine": {"k": 6}, "train": {"csd": {"k": 6}}})
    features_file(tmp_path / "data/whitened/t.h5", np.eye(6, dtype=np.float32), attrs)
    result = rdistill(tmp_path, "mine", "t")
    assert result.returncode == 1
    assert last_line(result) == "error: mine.k: 6 neighbours of each of 6 training images (at most 5); set mine.k ≤ 5"


def test_gallery_smaller_than_k_is_refused_and_queries_without_positives_warned(tmp_path):
    attrs = prepared(tmp_path, 6, ["test"] * 6)
    raw = np.eye(6, dtype=np.float32) + 0.01
    features_file(tmp_path / "data/features/t.h5", raw, attrs)
    features_file(tmp_path / "data/whitened/t.h5", raw, attrs)
    result = rdistill(tmp_path, "evaluate-teacher", "t")
    assert result.returncode == 1
    assert last_line(result) == ("error: evaluate.recall_at: k=10 exceeds the gallery of 6 images in "
                                 "data/prepared/list.csv")
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["evaluate"] = {"recall_at": [1, 5]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    write_list(tmp_path / "data/prepared/list.csv", [f"{i}.png" for i in range(6)], [0, 0, 1, 1, 2, 3], ["test"] * 6)
    attrs["list_sha256"] = sha256_file(tmp_path / "data/prepared/list.csv")
    features_file(tmp_path / "data/features/t.h5", raw, attrs)
    features_file(tmp_path / "data/whitened/t.h5", raw, attrs)
    result = rdistill(tmp_path, "evaluate-teacher", "t")
    assert result.returncode == 0, result.stderr
    assert "2 of 6 queries have no positive in the gallery" in result.stderr


def test_state_dict_of_another_architecture_names_the_unmatched_keys(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"teachers": {"t": {"arch": "resnet34", "weights": "r18.pth"}}}))
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    result = rdistill(tmp_path, "teacher", "t")
    assert result.returncode == 1
    assert last_line(result) == ("error: r18.pth: 96 key(s) of ResNet missing ('layer1.2.conv1.weight', "
                                 "'layer1.2.bn1.weight', 'layer1.2.bn1.bias', 'layer1.2.bn1.running_mean' and 92 more) "
                                 "(another architecture, or a layout rdistill does not read)")
    assert not (tmp_path / "data/teachers").exists()


def test_disk_full_during_a_write_keeps_the_previous_output(tmp_path, monkeypatch):
    import pipeline.data.h5 as h5

    path = tmp_path / "f.h5"
    features_file(path, np.eye(3, dtype=np.float32), {"v": 1})
    before = path.read_bytes()

    def full(self, rows, features):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(h5._RowWriter, "write", full)
    with pytest.raises(OSError):
        features_file(path, np.eye(3, dtype=np.float32) * 2, {"v": 2})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["f.h5"]
    monkeypatch.undo()
    features_file(path, np.eye(3, dtype=np.float32) * 2, {"v": 2})  # the next run redoes it
    assert read_features(path).attrs["v"] == 2


def test_unknown_key_in_params_is_one_line_with_exit_code(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"teachers": {"t": {"arch": "resnet18", "wieghts": "x"}}}))
    result = rdistill(tmp_path, "prepare")
    assert result.returncode == 1
    assert last_line(result) == "error: params.yaml: teachers.t.wieghts: Extra inputs are not permitted (got 'x')"
    assert "Traceback" not in result.stderr


def test_query_and_gallery_of_different_dimensions_are_refused(tmp_path):
    from pipeline.data.listfile import read_list
    from pipeline.evaluate.protocols import score
    prepared(tmp_path, 4, ["test"] * 4)
    image_list = read_list(tmp_path / "data/prepared/list.csv")
    with pytest.raises(Exception, match="query features are 8-d but gallery features 16-d"):
        score(image_list, np.ones((4, 8), np.float32), np.ones((4, 16), np.float32), None, (1,))


def test_extraction_refuses_a_teacher_that_outputs_nan(tmp_path, monkeypatch):
    import stages.extract as extract_stage
    from pipeline.models.backbones import create
    images = user_list(tmp_path, ["a.png,0,train", "b.png,1,test", "e.png,1,train", "f.png,1,test"])
    for name in ("a.png", "b.png", "e.png", "f.png"):
        good(images, name)
    assert rdistill(tmp_path, "prepare").returncode == 0
    (tmp_path / "data/teachers").mkdir(parents=True)
    net = create("resnet18")
    torch.save(net.state_dict(), tmp_path / "data/teachers/t.pt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(extract_stage, "describe",
                        lambda *a, **k: iter([(np.array([0, 1]), np.array([[1.0, 0.0], [np.nan, 1.0]], np.float32))]))
    with pytest.raises(Exception, match=r"images/b.png: teacher t gave a NaN, inf or all-zero feature \(row 1\)"):
        extract_stage.extract("t", Path("params.yaml"))
    assert not (tmp_path / "data/features/t.h5").exists()


@pytest.mark.parametrize("kind, reason", [
    ("missing", r"image file not found"),
    ("dangling", r"image file not found \(dangling symlink\)"),
    ("directory", r"not a file"),
    ("empty", r"cannot decode image \(cannot identify image file .*\)"),
    ("truncated", r"cannot decode image \(.*\)"),
    ("text", r"cannot decode image \(cannot identify image file .*\)"),
    ("bomb", r"cannot decode image \(Image size \(10000000000 pixels\) exceeds limit .*\)"),
])
def test_every_refused_image_kind_stops_prepare_with_one_line(tmp_path, kind, reason):
    from tests.data.test_decode import huge_png, truncated
    images = user_list(tmp_path, ["a.png,0,train", "bad.jpg,1,train"])
    good(images, "a.png")
    bad = images / "bad.jpg"
    {"missing": lambda: None, "dangling": lambda: bad.symlink_to(images / "gone.jpg"), "directory": bad.mkdir,
     "empty": lambda: bad.write_bytes(b""), "truncated": lambda: truncated(bad, "JPEG"),
     "text": lambda: bad.write_text("not an image"), "bomb": lambda: huge_png(bad)}[kind]()
    earlier = tmp_path / "data/prepared/list.csv"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("path,label,split\nearlier.png,0,train\n")
    before = digest(tmp_path / "data")
    result = rdistill(tmp_path, "prepare")
    assert result.returncode == 1
    assert re.fullmatch(rf"error: images/bad.jpg: {reason} \(row 1\); set prepare.on_bad_image: skip to leave such "
                        rf"images out", last_line(result))
    assert "Traceback" not in result.stderr
    assert digest(tmp_path / "data") == before


def test_prepared_list_carries_each_image_md5_so_an_edited_image_changes_it(tmp_path):
    images = user_list(tmp_path, ["a.png,0,train", "b.png,1,train", "c.png,1,test", "d.png,1,test"],
                       {"on_bad_image": "fail"})
    for name in ("a.png", "b.png", "c.png", "d.png"):
        good(images, name)
    assert rdistill(tmp_path, "prepare").returncode == 0
    listed = tmp_path / "data/prepared/list.csv"
    rows = listed.read_text().splitlines()
    assert rows[0] == "path,label,split,md5,root"
    assert rows[1] == f"a.png,0,train,{hashlib.md5((images / 'a.png').read_bytes()).hexdigest()},prepare.root"
    assert (tmp_path / "data/prepared/ground_truth.json").read_text() == "null"
    before = listed.read_bytes()
    Image.new("RGB", (9, 9), (1, 2, 3)).save(images / "c.png")
    assert rdistill(tmp_path, "prepare").returncode == 0
    assert listed.read_bytes() != before


def test_an_index_too_big_to_train_on_the_rows_falls_back_to_exact_search(tmp_path):
    attrs = prepared(tmp_path, 12, params={"mine": {"index": "PQ4x4", "k": 3}, "train": {"csd": {"k": 3}}})
    features_file(tmp_path / "data/whitened/t.h5", np.eye(12, 8, dtype=np.float32) + 0.01, attrs)
    result = rdistill(tmp_path, "mine", "t")
    assert result.returncode == 0, result.stderr
    assert ("mine.index: PQ4x4 needs at least 16 training rows (PQ4x4's 16 centroids per sub-quantiser), 12 here: "
            "exact search instead") in result.stderr
    assert json.loads((tmp_path / "metrics/mine/t.json").read_text())["index"] == "Flat"
