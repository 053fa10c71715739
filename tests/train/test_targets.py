import numpy as np

from pipeline.data.h5 import feature_writer
from tests.reference import read_features
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


def test_pair_partners_pick_the_best_mean_similarity_block_by_block():
    import pytest
    import torch

    from pipeline.errors import RdistillError
    from pipeline.train.targets import pair_partners
    rng = np.random.default_rng(0)
    table = rng.standard_normal((2, 20, 4)).astype(np.float32)  # 2 teachers, 20 list rows (view 0)
    table /= np.linalg.norm(table, axis=-1, keepdims=True)
    rows = np.array([1, 3, 4, 7, 8, 10, 12, 15, 18])  # training rows; candidates are training rows
    candidates = np.stack([rng.choice(np.setdiff1d(rows, [r]), 3, replace=False) for r in rows])
    candidates[2, 1:] = -1  # one candidate only
    expected = []
    for anchor, cand in zip(rows, candidates):
        scores = {c: sum(float(table[k, anchor] @ table[k, c]) for k in range(2)) / 2 for c in cand if c >= 0}
        expected.append(int(np.searchsorted(rows, max(scores, key=scores.get))))
    got = pair_partners(torch.from_numpy(table), rows, candidates, block=4)
    assert got.tolist() == expected
    candidates[5] = -1
    with pytest.raises(RdistillError, match="training row 10 has no mined neighbour"):
        pair_partners(torch.from_numpy(table), rows, candidates, block=4)
