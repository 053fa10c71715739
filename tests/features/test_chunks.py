import numpy as np

from pipeline.features.chunks import ChunkCollector, chunk_count, extraction_items, pending_positions, write_chunk


def test_items_are_plain_rows_then_the_training_rows_views():
    assert extraction_items(5, np.array([1, 3]), 3).tolist() == [0, 1, 2, 3, 4, 6, 8, 11, 13]
    assert chunk_count(9, 4) == 3
    assert pending_positions([0, 2], 9, 4).tolist() == [0, 1, 2, 3, 8]


def test_a_chunk_is_handed_back_once_all_its_items_arrived_in_any_order():
    items = extraction_items(5, np.array([1, 3]), 3)  # 9 items, chunks of 4: [0..3], [4..7], [8]
    collector = ChunkCollector(items, 4)
    feats = {int(i): np.full(2, float(i), dtype=np.float32) for i in items}

    def batch(*its):
        return list(collector.add(np.array(its), np.stack([feats[i] for i in its])))

    last = batch(13, 0, 1)  # item 13 is position 8: the last chunk, complete on its own
    assert [(c, a["rows"].tolist()) for c, a in last] == [(2, [8])]
    assert batch(2, 6) == []
    done = batch(3, 4, 8, 11)
    assert [c for c, _ in done] == [0, 1]
    chunk0 = dict(done)[0]
    assert chunk0["rows"].tolist() == [0, 1, 2, 3] and chunk0["features"][:, 0].tolist() == [0, 1, 2, 3]


def test_finished_chunks_go_to_the_plain_rows_and_the_views():
    class Writer:
        def __init__(self):
            self.calls = []

        def write(self, rows, feats):
            self.calls.append((0, rows.tolist()))

        def write_view(self, view, rows, feats):
            self.calls.append((view, rows.tolist()))

    items = extraction_items(5, np.array([1, 3]), 3)
    writer = Writer()
    write_chunk(writer, items, 5, np.array([4, 5, 6, 7]), np.zeros((4, 2), dtype=np.float32))
    assert writer.calls == [(0, [4]), (1, [1, 3]), (2, [1])]


def test_each_chunk_goes_to_one_rank_whatever_the_ranks_saw_finished():
    from pipeline.features.chunks import chunks_of_rank

    shares = [chunks_of_rank(10, set(), r, 3) for r in range(3)]
    assert sorted(c for share in shares for c in share) == list(range(10))
    # a late rank lists its chunks after rank 0 published chunks 0 and 3: its own share is unchanged
    assert chunks_of_rank(10, {0, 3}, 1, 3) == shares[1] == [1, 4, 7]
    assert chunks_of_rank(10, {0, 3}, 0, 3) == [6, 9]  # a resumed rank skips only its finished chunks
    assert chunks_of_rank(10, {4}, 1, 3) == [1, 7]
