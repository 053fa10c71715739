import numpy as np

from pipeline.data.h5 import feature_writer, read_features
from pipeline.data.rows import FeatureRows
from pipeline.train.targets import open_targets, write_targets


def feature_file(path, rng, n=50, dim=6, view_rows=np.array([0, 1, 2, 7, 8, 20, 21, 22, 23, 40])):
    feats = rng.standard_normal((n, dim)).astype(np.float32)
    views = rng.standard_normal((2, len(view_rows), dim)).astype(np.float32)
    with feature_writer(path, [str(i) for i in range(n)], {"views": 3}, chunk_rows=8, view_rows=view_rows,
                        n_views=3) as writer:
        writer.write(np.arange(n), feats)
        for v in (1, 2):
            writer.write_view(v, view_rows, views[v - 1])
    return view_rows


def test_target_file_holds_every_item_of_every_teacher(tmp_path, rng):
    teachers, expected = [], []
    for t in range(2):
        path = tmp_path / f"t{t}.h5"
        view_rows = feature_file(path, rng)
        expected.append(read_features(path).items())  # the in-memory (V·N, D) layout, zeros for rows without views
        teachers.append((FeatureRows(path, block=4),
                         [(FeatureRows(path, dataset="views", plane=v, block=3), view_rows) for v in range(2)]))
    write_targets(tmp_path / "targets.npy", teachers, n_rows=50, n_views=3)
    got = open_targets(tmp_path / "targets.npy")
    assert got.shape == (2, 150, 6) and got.dtype == np.float32
    assert np.array_equal(got, np.stack(expected))
    got[0, 0] = 0  # copy-on-write: the file itself is never changed by training
    assert np.array_equal(open_targets(tmp_path / "targets.npy"), np.stack(expected))
