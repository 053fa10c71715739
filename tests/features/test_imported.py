"""Teacher features computed elsewhere: imported by id into the prepared list's order, or refused by name."""
import numpy as np
import pytest

from pipeline.data.h5 import feature_writer
from pipeline.data.rows import FeatureRows
from pipeline.errors import RdistillError
from pipeline.features.imported import import_features

LIST_IDS = ["a", "b", "c", "d", "e"]


def source_npy(tmp_path, ids, feats):
    np.save(tmp_path / "f.npy", feats)
    (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in ids))
    return tmp_path / "f.npy", tmp_path / "ids.txt"


def test_npy_features_in_another_order_are_written_in_the_lists_order(tmp_path, rng):
    order = ["d", "a", "e", "c", "b"]
    feats = rng.standard_normal((5, 3)).astype(np.float32)
    path, ids = source_npy(tmp_path, order, feats)
    attrs = import_features(path, ids, LIST_IDS, tmp_path / "out.h5", {"teacher": "t"}, block=2)
    with FeatureRows(tmp_path / "out.h5") as reader:
        got = reader.read(0, 5)
        assert list(reader.ids()) == LIST_IDS and reader.attrs["teacher"] == "t"
    assert np.array_equal(got, feats[[order.index(i) for i in LIST_IDS]])
    assert attrs["source"] == str(path) and len(attrs["source_sha256"]) == 64


def test_hdf5_features_in_the_projects_layout_are_imported_by_id(tmp_path, rng):
    feats = rng.standard_normal((6, 4)).astype(np.float32)
    source_ids = ["e", "x", "a", "c", "b", "d"]  # one extra row in the source is an error...
    with feature_writer(tmp_path / "src.h5", source_ids, {"environment": {"device": "NVIDIA A100"}}) as writer:
        writer.write(np.arange(6), feats)
    with pytest.raises(RdistillError, match=r"src.h5: id 'x' \(row 1\) is not in the prepared list"):
        import_features(tmp_path / "src.h5", None, LIST_IDS, tmp_path / "out.h5", {})
    attrs = import_features(tmp_path / "src.h5", None, ["x", *LIST_IDS], tmp_path / "out.h5", {})  # ...not here
    with FeatureRows(tmp_path / "out.h5") as reader:
        assert np.array_equal(reader.read(0, 6), feats[[1, 2, 4, 3, 5, 0]])
    assert attrs["environment"] == {"device": "NVIDIA A100"}  # what computed them, when the source says


@pytest.mark.parametrize("ids, feats_rows, message", [
    (["a", "b", "c", "d"], 4, r"ids.txt: the prepared list's id 'e' \(row 4\) is missing"),
    (["a", "b", "c", "d", "d"], 5, r"ids.txt: id 'd' appears twice \(lines 4 and 5\)"),
    (["a", "b", "c", "d", "e"], 4, r"f.npy: 4 rows of features for 5 ids in .*ids.txt"),
])
def test_missing_duplicate_and_mismatched_ids_are_named(tmp_path, rng, ids, feats_rows, message):
    path, id_file = source_npy(tmp_path, ids, rng.standard_normal((feats_rows, 3)).astype(np.float32))
    with pytest.raises(RdistillError, match=message):
        import_features(path, id_file, LIST_IDS, tmp_path / "out.h5", {})
    assert not (tmp_path / "out.h5").exists()


def test_a_npy_without_ids_and_bad_rows_are_refused(tmp_path):
    feats = np.ones((5, 3), dtype=np.float32)
    feats[2] = np.nan
    path, id_file = source_npy(tmp_path, LIST_IDS, feats)
    with pytest.raises(RdistillError, match=r"f.npy: a .npy file needs its ids \(teachers.T.ids: a text file"):
        import_features(path, None, LIST_IDS, tmp_path / "out.h5", {})
    with pytest.raises(RdistillError, match=r"f.npy: row 2 holds NaN or inf"):
        import_features(path, id_file, LIST_IDS, tmp_path / "out.h5", {})


def test_an_imported_teacher_runs_through_the_stages_and_verify_notices_a_changed_source(tmp_path, monkeypatch, rng):
    import json
    from pathlib import Path

    import yaml

    from pipeline.data.listfile import read_list
    from stages.evaluate_teachers import evaluate_teacher
    from stages.extract import extract
    from stages.prepare import prepare
    from stages.teacher import teacher
    from stages.verify import verify
    from stages.whiten import whiten
    monkeypatch.chdir(tmp_path)
    params = {"prepare": {"limit": 60, "n_train": 30}, "whiten": {"n_components": 4}, "mine": {"k": 8},
              "train": {"csd": {"k": 8}},
              "teachers": {"dino": {"arch": "dinov2 (cluster)", "features": str(tmp_path / "dino.npy"),
                                    "ids": str(tmp_path / "dino_ids.txt")}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    prepare(Path("params.yaml"))
    image_list = read_list(tmp_path / "data/prepared/list.csv")
    # features that know the labels (class centre + noise), written in reverse order
    centres = rng.standard_normal((10, 16)).astype(np.float32)
    feats = centres[image_list.labels] + 0.3 * rng.standard_normal((60, 16)).astype(np.float32)
    source_npy(tmp_path, image_list.ids[::-1], feats[::-1])
    (tmp_path / "f.npy").rename(tmp_path / "dino.npy")
    (tmp_path / "ids.txt").rename(tmp_path / "dino_ids.txt")
    for stage in (teacher, extract, whiten):
        stage("dino", Path("params.yaml"))
    with FeatureRows(tmp_path / "data/features/dino.h5") as reader:
        assert np.array_equal(reader.read(0, 60), feats)
    assert verify("dino", Path("params.yaml"))[1] is None
    evaluate_teacher("dino", Path("params.yaml"))
    assert json.loads((tmp_path / "metrics/eval_teacher/dino.json").read_text())["raw"]["mAP"] > 0.5
    np.save(tmp_path / "dino.npy", feats)  # the source changed after the import
    text, failure = verify("dino", Path("params.yaml"))
    assert "the source changed" in text
    assert failure.startswith(f"teacher dino: {tmp_path / 'dino.npy'} is not the file imported (sha256 ")
    # a teammate's machine without the source: the cache's own rows are checked, and verify passes
    (tmp_path / "dino.npy").unlink()
    text, failure = verify("dino", Path("params.yaml"))
    assert failure is None and "is not on this machine" in text and "60 rows are complete and finite" in text
    assert json.loads((tmp_path / "metrics/verify/dino.json").read_text())["source_present"] is False
    # ... and a cache damaged since it was pulled is refused there too
    import h5py
    with h5py.File(tmp_path / "data/features/dino.h5", "r+") as f:
        f["features"][7] = np.nan
    with pytest.raises(RdistillError, match="NaN"):
        verify("dino", Path("params.yaml"))
