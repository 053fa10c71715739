import h5py
import numpy as np
import pytest

from pipeline.data.h5 import feature_writer, read_arrays, write_arrays
from tests.reference import read_features
from pipeline.data.rows import FeatureRows, read_all
from pipeline.errors import RdistillError


def test_feature_file_round_trip_keeps_rows_ids_and_provenance(tmp_path, rng):
    path = tmp_path / "f.h5"
    feats = rng.standard_normal((10, 4)).astype(np.float32)
    attrs = {"arch": "resnet50", "scales": [1.0, 0.7071], "weights_sha256": "ab" * 32,
             "image_size": 32, "versions": {"torch": "2.14.1"}}
    with feature_writer(path, [f"img{i}.png" for i in range(10)], attrs, chunk_rows=3) as writer:
        writer.write(np.array([9, 0, 5, 1, 2]), feats[[9, 0, 5, 1, 2]])  # out of order, as grouped batches come
        writer.write(np.array([3, 4, 6, 7, 8]), feats[[3, 4, 6, 7, 8]])
    got = read_features(path)
    assert np.array_equal(got.features, feats)
    assert got.ids == [f"img{i}.png" for i in range(10)]
    for key, value in attrs.items():
        assert got.attrs[key] == value
    with h5py.File(path) as h5:
        assert h5["features"].chunks == (3, 4)


def test_failed_write_leaves_previous_file_untouched(tmp_path):
    path = tmp_path / "f.h5"
    write_arrays(path, {"x": np.arange(3)}, {"v": 1})
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with feature_writer(path, ["a"], {}) as writer:
            writer.write(np.array([0]), np.ones((1, 2)))
            raise RuntimeError("killed midway")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.h5"]


def test_incomplete_and_corrupt_files_are_refused_by_name(tmp_path):
    incomplete = tmp_path / "half.h5"
    with h5py.File(incomplete, "w") as h5:
        h5["features"] = np.zeros((2, 2), dtype=np.float32)
        h5["ids"] = np.array([b"a", b"b"])
    with pytest.raises(RdistillError, match="half.h5: incomplete"):
        FeatureRows(incomplete)
    corrupt = tmp_path / "bad.h5"
    corrupt.write_bytes(b"not hdf5 at all")
    with pytest.raises(RdistillError, match="bad.h5: unreadable"):
        read_arrays(corrupt, ["features"])


def test_non_finite_rows_are_refused(tmp_path):
    path = tmp_path / "nan.h5"
    feats = np.ones((3, 2), dtype=np.float32)
    feats[1, 0] = np.nan
    with feature_writer(path, ["a", "b", "c"], {}) as writer:
        writer.write(np.arange(3), feats)
    with pytest.raises(RdistillError, match="row 1 holds NaN"), FeatureRows(path) as rows:
        read_all(rows)


def test_views_round_trip_and_index_as_items(tmp_path, rng):
    path = tmp_path / "v.h5"
    feats = rng.standard_normal((5, 3)).astype(np.float32)
    view_rows = np.array([1, 3, 4])
    views = rng.standard_normal((2, 3, 3)).astype(np.float32)  # views 1 and 2 of rows 1, 3, 4
    with feature_writer(path, [str(i) for i in range(5)], {"views": 3}, view_rows=view_rows, n_views=3) as writer:
        writer.write(np.arange(5), feats)
        writer.write_view(2, np.array([4, 1]), views[1, [2, 0]])
        writer.write_view(2, np.array([3]), views[1, [1]])
        writer.write_view(1, view_rows, views[0])
    got = read_features(path)
    assert np.array_equal(got.views, views) and np.array_equal(got.view_rows, view_rows)
    items = got.items()
    assert items.shape == (15, 3)
    assert np.array_equal(items[:5], feats)
    assert np.array_equal(items[2 * 5 + 3], views[1, 1]) and np.array_equal(items[5 + 4], views[0, 2])
    assert not items[5 + 0].any()  # row 0 has no views
