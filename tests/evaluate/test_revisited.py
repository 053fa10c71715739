import numpy as np
import pytest

from pipeline.evaluate.revisited import QueryTruth, format_revisited
from tests.reference import revisited_scores


def truth(easy=(), hard=(), junk=()):
    return QueryTruth(np.array(easy, dtype=int), np.array(hard, dtype=int), np.array(junk, dtype=int))


def test_hand_worked_query_with_junk_and_ignored_images():
    ranking = np.array([3, 0, 5, 1, 4, 2])
    result = revisited_scores([ranking], [truth(easy=[0, 2], hard=[5], junk=[4])], ks=(1, 5))
    # Easy: 4 and 5 removed -> [3, 0, 1, 2]; positives at ranks 1 and 3
    assert result["easy"]["mAP"] == pytest.approx(((0 / 1 + 1 / 2) / 2 + (1 / 3 + 2 / 4) / 2) / 2)
    assert result["easy"]["mP@1"] == 0.0
    assert result["easy"]["mP@5"] == pytest.approx(2 / 4)  # k' = min(5, last positive at 4)
    # Medium: 4 removed -> [3, 0, 5, 1, 2]; positives at ranks 1, 2, 4
    assert result["medium"]["mAP"] == pytest.approx(((0 + 1 / 2) / 2 + (1 / 2 + 2 / 3) / 2 + (2 / 4 + 3 / 5) / 2) / 3)
    # Hard: 4, 0, 2 removed -> [3, 5, 1]; positive at rank 1
    assert result["hard"]["mAP"] == pytest.approx(0.25)


def test_positive_at_rank_zero_all_positives_last_and_queries_without_positives():
    rankings = [np.array([0, 1, 2, 3]), np.array([2, 3, 0, 1])]
    truths = [truth(easy=[0], hard=[]), truth(easy=[0, 1], hard=[1] * 0)]
    result = revisited_scores(rankings, truths, ks=(1,))
    # query 0: rank 0 -> AP 1; query 1: positives last, ranks 2 and 3
    ap_last = ((0 / 2 + 1 / 3) / 2 + (1 / 3 + 2 / 4) / 2) / 2
    assert result["easy"]["mAP"] == pytest.approx((1 + ap_last) / 2)
    assert result["hard"]["queries"] == 0 and np.isnan(result["hard"]["mAP"])  # no hard positives anywhere


def loop_reference(ranking, positives, junk, ks):
    """A plain port of the benchmark's loops: positions, junk shift, interpolated AP, precision at k."""
    pos = [i for i, g in enumerate(ranking) if g in positives]
    jnk = [i for i, g in enumerate(ranking) if g in junk]
    shifted = []
    for p in pos:
        shifted.append(p - sum(1 for j in jnk if j < p))
    ap = 0.0
    for j, rank in enumerate(shifted):
        p0 = 1.0 if rank == 0 else j / rank
        p1 = (j + 1) / (rank + 1)
        ap += (p0 + p1) / 2 / len(positives)
    one_based = [r + 1 for r in shifted]
    prs = []
    for k in ks:
        kq = min(max(one_based), k)
        prs.append(sum(1 for r in one_based if r <= kq) / kq)
    return ap, prs


def test_matches_loop_reference_on_random_queries(rng):
    n_db, ks = 40, (1, 5, 10)
    rankings, truths = [], []
    for _ in range(25):
        perm = rng.permutation(n_db)
        easy, hard, junk = np.split(rng.permutation(n_db)[:12], [5, 9])
        rankings.append(perm)
        truths.append(QueryTruth(easy, hard, junk))
    result = revisited_scores(rankings, truths, ks)
    for setting, (pos_of, ign_of) in {"easy": (lambda t: t.easy, lambda t: np.r_[t.junk, t.hard]),
                                      "medium": (lambda t: np.r_[t.easy, t.hard], lambda t: t.junk),
                                      "hard": (lambda t: t.hard, lambda t: np.r_[t.junk, t.easy])}.items():
        refs = [loop_reference(list(r), set(pos_of(t)), set(ign_of(t)), ks) for r, t in zip(rankings, truths)]
        assert result[setting]["mAP"] == pytest.approx(np.mean([a for a, _ in refs]))
        for j, k in enumerate(ks):
            assert result[setting][f"mP@{k}"] == pytest.approx(np.mean([p[j] for _, p in refs]))


def test_printed_in_the_papers_layout():
    result = {s: {"mAP": 0.5, "mP@1": 1.0, "mP@5": 0.8, "mP@10": 0.7, "queries": 1} for s in ("easy", "medium", "hard")}
    text = format_revisited("roxford5k", result)
    assert text.splitlines()[0] == ">> roxford5k: mAP E: 50.00, M: 50.00, H: 50.00"
    assert text.splitlines()[1].startswith(">> roxford5k: mP@k[1, 5, 10] E: [100.00 80.00 70.00], M:")
