import numpy as np
import pytest

from pipeline.data.h5 import feature_writer
from pipeline.data.rows import ArrayRows, FeatureRows, spans
from pipeline.errors import RdistillError


def write(path, feats, chunk_rows=7, view_rows=None, views=None):
    n_views = 1 if views is None else len(views) + 1
    with feature_writer(path, [f"i{r}" for r in range(len(feats))], {"t": 1}, chunk_rows=chunk_rows,
                        view_rows=view_rows, n_views=n_views) as writer:
        writer.write(np.arange(len(feats)), feats)
        for v in range(1, n_views):
            writer.write_view(v, view_rows, views[v - 1])


def test_spans_never_exceed_the_span_nor_bridge_a_gap():
    rows = np.array([0, 1, 2, 10, 11, 40, 41, 42, 43, 44, 45])
    got = spans(rows, max_span=4, max_gap=5)
    assert got == [(0, 3), (3, 5), (5, 9), (9, 11)]
    for lo, hi in got:
        assert rows[hi - 1] - rows[lo] < 4 and (np.diff(rows[lo:hi]) <= 5).all()
    assert sum(hi - lo for lo, hi in got) == len(rows)


def test_blocks_and_gathers_equal_the_array(tmp_path, rng):
    feats = rng.standard_normal((103, 5)).astype(np.float32)
    write(tmp_path / "f.h5", feats)
    rows = np.array([3, 4, 5, 50, 51, 99, 100, 102])
    with FeatureRows(tmp_path / "f.h5", block=4) as reader:
        assert len(reader) == 103 and reader.dim == 5
        assert np.array_equal(np.concatenate([b for _, b in reader.blocks()]), feats)
        assert [s for s, _ in reader.blocks()] == list(range(0, 103, 4))
        order = np.array([100, 3, 3, 51, 0, 102])  # any order, repeats
        assert np.array_equal(reader.gather(order), feats[order])
        assert list(reader.ids()[:2]) == ["i0", "i1"]
    with FeatureRows(tmp_path / "f.h5", rows=rows, block=3) as reader:
        assert np.array_equal(np.concatenate([b for _, b in reader.blocks()]), feats[rows])
        assert np.array_equal(reader.gather(np.array([7, 0])), feats[rows[[7, 0]]])
        assert list(reader.ids()) == [f"i{r}" for r in rows]
    memory = ArrayRows(feats, rows, block=3)
    assert np.array_equal(np.concatenate([b for _, b in memory.blocks()]), feats[rows])


def test_views_plane_is_read_by_rows(tmp_path, rng):
    feats = rng.standard_normal((20, 3)).astype(np.float32)
    view_rows = np.arange(0, 20, 2)
    views = rng.standard_normal((2, 10, 3)).astype(np.float32)
    write(tmp_path / "f.h5", feats, view_rows=view_rows, views=views)
    with FeatureRows(tmp_path / "f.h5", dataset="views", plane=1, block=4) as reader:
        assert len(reader) == 10
        assert np.array_equal(np.concatenate([b for _, b in reader.blocks()]), views[1])


@pytest.mark.parametrize("value, message", [(np.nan, "row 57 holds NaN or inf"), (0.0, "row 57 is all zeros")])
def test_bad_rows_are_named_by_file_row_when_read(tmp_path, rng, value, message):
    feats = rng.standard_normal((80, 4)).astype(np.float32)
    feats[57] = value
    write(tmp_path / "f.h5", feats)
    with FeatureRows(tmp_path / "f.h5", block=16) as reader:
        assert np.array_equal(reader.read(0, 50), feats[:50])  # blocks before the bad row read fine
        with pytest.raises(RdistillError, match=f"f.h5: {message}"):
            list(reader.blocks())
        with pytest.raises(RdistillError, match=message):
            reader.gather(np.array([3, 57]))


def test_incomplete_and_missing_files_are_refused(tmp_path):
    with pytest.raises(RdistillError, match="missing.h5: file not found"):
        FeatureRows(tmp_path / "missing.h5")
    import h5py
    with h5py.File(tmp_path / "half.h5", "w") as h5:
        h5["features"] = np.ones((2, 2), dtype=np.float32)
    with pytest.raises(RdistillError, match="half.h5: incomplete file"):
        FeatureRows(tmp_path / "half.h5")


def test_ids_are_copied_from_another_file_as_they_are(tmp_path, rng):
    from tests.reference import read_features
    feats = rng.standard_normal((12, 3)).astype(np.float32)
    write(tmp_path / "a.h5", feats)
    with FeatureRows(tmp_path / "a.h5") as reader:
        with feature_writer(tmp_path / "b.h5", reader.ids_dataset(), {"t": 2}) as writer:
            writer.write(np.arange(12), 2 * feats)
    got = read_features(tmp_path / "b.h5")
    assert got.ids == [f"i{r}" for r in range(12)] and np.array_equal(got.features, 2 * feats)


def test_items_are_read_from_the_plain_rows_and_the_view_planes(tmp_path, rng):
    feats = rng.standard_normal((20, 3)).astype(np.float32)
    view_rows = np.arange(0, 20, 2)
    views = rng.standard_normal((2, 10, 3)).astype(np.float32)
    write(tmp_path / "f.h5", feats, view_rows=view_rows, views=views)
    with FeatureRows(tmp_path / "f.h5") as reader:
        # item = view · 20 + row: view 2 of row 18 (view row 9), row 3 plain, view 1 of row 4 (view row 2)
        got = reader.read_items(np.array([2 * 20 + 18, 3, 1 * 20 + 4]))
    assert np.array_equal(got, np.stack([views[1, 9], feats[3], views[0, 2]]))
