"""Ranks counted blockwise equal the ranks in FAISS's full exact ranking (today's reference), ties included."""
import faiss
import numpy as np
import pytest
import torch

from pipeline.data.h5 import feature_writer
from pipeline.data.rows import ArrayRows, FeatureRows
from pipeline.evaluate.metrics import class_protocol
from tests.reference import average_precision, interpolated_precision
from pipeline.evaluate.ranks import ahead_counts, positive_ranks
from pipeline.evaluate.revisited import SETTINGS, QueryTruth
from tests.reference import revisited_scores


def full_ranking(q, db):
    index = faiss.IndexFlatIP(db.shape[1])
    index.add(db)
    return index.search(q, len(db))[1]


def tied_features(rng, n, dim=3):
    """Small integer vectors: many exact ties and duplicates, computed exactly in float32."""
    return rng.integers(-2, 3, (n, dim)).astype(np.float32)


def test_ahead_counts_by_hand():
    row = np.array([0.5, 0.9, 0.5, 0.1, 0.5], dtype=np.float32)
    # position 0 (0.5): 0.9 ahead, and the later ties at 2 and 4 -> 3; position 2: 0.9 and 4 -> 2; position 4: 0.9 -> 1
    for sorted_row in (None, np.sort(row)):
        assert ahead_counts(row, np.array([0, 2, 4, 1, 3]), sorted_row).tolist() == [3, 2, 1, 0, 4]


def test_faiss_returns_ties_later_position_first():
    db = np.ones((5, 2), dtype=np.float32)
    assert full_ranking(db[:1], db)[0].tolist() == [4, 3, 2, 1, 0]


@pytest.mark.parametrize("budget", [4 * 10, 1 << 20])
def test_class_protocol_equals_the_full_faiss_ranking_with_ties(tmp_path, rng, budget):
    db = tied_features(rng, 150)
    labels = rng.integers(0, 5, 150)
    cams = rng.integers(0, 3, 150)
    rows = np.arange(150)
    q_rows = rows[::3]
    with feature_writer(tmp_path / "g.h5", [str(r) for r in rows], {}, chunk_rows=16) as writer:
        writer.write(rows, db + 10)  # no all-zero rows
    for use_cams in (False, True):
        ids = full_ranking(db[q_rows], db)
        relevant = labels[ids] == labels[q_rows][:, None]
        kept = ids != q_rows[:, None]
        if use_cams:
            kept &= ~(relevant & (cams[ids] == cams[q_rows][:, None]))
        ap = average_precision(relevant, kept)
        first = np.where(relevant & kept, np.cumsum(kept, axis=1), 10 ** 9).min(axis=1)
        curve = interpolated_precision(relevant, kept)[~np.isnan(ap)].mean(axis=0)
        extra = dict(q_cameras=cams[q_rows], db_cameras=cams) if use_cams else {}
        got = class_protocol(db[q_rows], labels[q_rows], q_rows, ArrayRows(db, block=7), labels, rows,
                             recall_at=(1, 5), budget_bytes=budget, **extra)
        assert np.isclose(got["mAP"], np.nanmean(ap), rtol=0, atol=1e-12)
        assert np.allclose(got["per_query_ap"], ap, rtol=0, atol=1e-12, equal_nan=True)  # every query's own AP
        assert got["R@1"] == np.mean(first[~np.isnan(ap)] <= 1) and got["R@5"] == np.mean(first[~np.isnan(ap)] <= 5)
        assert np.allclose(got["pr_curve"]["precision"], curve, rtol=0, atol=1e-12)
    shifted = db + 10
    in_memory = class_protocol(shifted[q_rows], labels[q_rows], q_rows, shifted, labels, rows, budget_bytes=budget)
    with FeatureRows(tmp_path / "g.h5", block=9) as reader:  # the same gallery read from its file, block by block
        from_file = class_protocol(shifted[q_rows], labels[q_rows], q_rows, reader, labels, rows, budget_bytes=budget)
    assert np.array_equal(from_file.pop("per_query_ap"), in_memory.pop("per_query_ap"), equal_nan=True)
    assert from_file == in_memory


# None: numpy on CPU; a torch device: the products and sorting in torch, as on a GPU (exact on these integers)
@pytest.mark.parametrize("device", [None, torch.device("cpu")])
def test_revisited_ranks_equal_the_full_faiss_ranking_with_ties(rng, device):
    db = tied_features(rng, 120)
    q = tied_features(rng, 9)
    truths = []
    for _ in q:
        picks = rng.permutation(120)
        truths.append(QueryTruth(np.sort(picks[:6]), np.sort(picks[6:10]), np.sort(picks[10:15])))
    truths.append(QueryTruth(np.array([3]), np.zeros(0, np.int64), np.array([4])))  # no hard positive
    q = np.concatenate([q, tied_features(rng, 1)])
    reference = revisited_scores(full_ranking(q, db), truths, ks=(1, 5, 10))
    from pipeline.evaluate.revisited import revisited_scores_from_ranks
    ranks = positive_ranks(q, ArrayRows(db, block=11), [[t.split(s) for s in SETTINGS] for t in truths],
                           budget_bytes=4 * 240, device=device)
    got = revisited_scores_from_ranks(ranks, truths, ks=(1, 5, 10))
    for setting in SETTINGS:
        for key, value in reference[setting].items():
            assert np.allclose(got[setting][key], value, rtol=0, atol=1e-12, equal_nan=True), (setting, key)
        assert np.isnan(got[setting]["per_query_ap"]).sum() == (setting == "hard")  # the query without a hard positive
        assert np.isclose(np.nanmean(got[setting]["per_query_ap"]), got[setting]["mAP"], rtol=0, atol=1e-12)


def test_top_results_from_readers_equal_a_brute_force_ranking(tmp_path, rng):
    from pathlib import Path

    from pipeline.data.listfile import ImageList
    from pipeline.evaluate.protocols import top_results
    n = 60
    feats = rng.standard_normal((n, 8)).astype(np.float32)
    labels = rng.integers(0, 4, n)
    splits = np.array(["test"] * 10 + ["gallery"] * 50)  # test rows are queries and gallery items
    image_list = ImageList(Path("list.csv"), [str(i) for i in range(n)], [Path(str(i)) for i in range(n)], labels,
                           splits)
    gallery = image_list.gallery_rows()
    query_rows = np.array([0, 4, 9])
    rows, correct = top_results(image_list, ArrayRows(feats), ArrayRows(feats, block=7), query_rows, None, k=5)
    for i, qr in enumerate(query_rows):
        sims = feats[gallery] @ feats[qr]
        ranked = gallery[np.argsort(-sims, kind="stable")]
        expected = ranked[ranked != qr][:5]  # the query itself is left out
        assert rows[i].tolist() == expected.tolist()
        assert correct[i].tolist() == (labels[expected] == labels[qr]).tolist()


def test_a_torch_device_reads_the_gallery_once_for_every_query_batch(rng):
    import torch

    from pipeline.evaluate.ranks import similarity_rows

    class CountingRows(ArrayRows):
        passes = 0

        def blocks(self):
            CountingRows.passes += 1
            return super().blocks()

    db, q = rng.standard_normal((50, 8)).astype(np.float32), rng.standard_normal((12, 8)).astype(np.float32)
    gallery = CountingRows(db, block=7)
    batches = list(similarity_rows(q, gallery, budget_bytes=4 * 50 * 3, device=torch.device("cpu")))
    assert len(batches) == 4 and CountingRows.passes == 1  # 4 query batches, one read of the gallery
    sims = np.concatenate([b[1] for b in batches])
    assert np.allclose(sims, q @ db.T, rtol=0, atol=1e-5)  # float32 products of 8 terms in [-4, 4]
