import numpy as np
import pytest

from pipeline.index.refine import refine_neighbours
from pipeline.index.search import recall_at_k


def loop_refined(x, ids, width, k):
    """The refinement by its definition: each row's candidates are its neighbours and the neighbours of its
    `width` nearest, itself excluded; the k most similar, ties by lower id."""
    out_ids, out_sims = [], []
    for i in range(len(x)):
        candidates = set(ids[i].tolist())
        for j in ids[i][:width]:
            candidates |= set(ids[j].tolist())
        candidates.discard(i)
        scored = sorted((-float(np.dot(x[i].astype(np.float64), x[c].astype(np.float64))), c) for c in candidates)
        out_ids.append([c for _, c in scored[:k]])
        out_sims.append([-s for s, _ in scored[:k]])
    return np.array(out_sims), np.array(out_ids)


def random_neighbour_lists(rng, n, k):
    """k distinct ids per row, never the row itself, in random order."""
    ids = np.stack([rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)])
    return ids.astype(np.int32)


@pytest.mark.parametrize("width", [1, 3, 6])
def test_refinement_matches_its_definition_by_loops(rng, width):
    x = rng.standard_normal((120, 8)).astype(np.float32)
    ids = random_neighbour_lists(rng, 120, 6)
    want_sims, want_ids = loop_refined(x, ids, width, 6)
    for start, stop in [(0, 120), (7, 50)]:  # any batch of rows
        sims, got = refine_neighbours(x, ids, start, stop, width)
        assert got.shape == (stop - start, 6)
        np.testing.assert_array_equal(got, want_ids[start:stop])
        np.testing.assert_allclose(sims, want_sims[start:stop], rtol=0, atol=1e-5)


def test_refinement_repeats_no_id_and_never_returns_the_row_itself(rng):
    x = rng.standard_normal((40, 4)).astype(np.float32)
    ids = random_neighbour_lists(rng, 40, 10)
    _, got = refine_neighbours(x, ids, 0, 40, 10)
    assert all(len(set(row)) == 10 for row in got.tolist())
    assert not (got == np.arange(40)[:, None]).any()


def test_refinement_finds_neighbours_the_first_lists_missed(rng):
    # 40 groups of 8 well-separated points: each row first knows only 3 of its 7 group members (and 4 strangers);
    # the members it knows know others, so one pass finds most of the rest (a member stays unseen with
    # probability 4/7 · (4/7)^3 ≈ 0.11 in expectation, strangers' lists aside).
    n_groups, size = 40, 8
    centres = rng.standard_normal((n_groups, 16)) * 4
    x = (np.repeat(centres, size, axis=0) + 0.3 * rng.standard_normal((n_groups * size, 16))).astype(np.float32)
    group = np.arange(len(x)) // size
    exact = np.stack([np.flatnonzero((group == group[i]) & (np.arange(len(x)) != i)) for i in range(len(x))])
    known = np.stack([np.concatenate([rng.permutation(exact[i])[:3],
                                      rng.choice(np.flatnonzero(group != group[i]), 4, replace=False)])
                      for i in range(len(x))])
    before = recall_at_k(known, exact)
    _, refined = refine_neighbours(x, known, 0, len(x), 7)
    assert before == pytest.approx(3 / 7)
    assert recall_at_k(refined, exact) > 0.85
