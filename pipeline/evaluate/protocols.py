"""Choosing and running the evaluation protocol for an image list (revisited Oxford/Paris, Radenović et al., CVPR 2018)."""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.listfile import ImageList
from pipeline.errors import RdistillError
from pipeline.evaluate.metrics import as_rows, class_protocol
from pipeline.evaluate.ranks import positive_ranks, similarity_rows
from pipeline.evaluate.revisited import SETTINGS, QueryTruth, format_revisited, revisited_scores_from_ranks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroundTruth:
    """Revisited-protocol truth: the dataset's name, query rows, and their lists as gallery positions."""

    dataset: str
    query_rows: np.ndarray
    queries: list[QueryTruth]


def load_ground_truth(path: Path, image_list: ImageList) -> GroundTruth | None:
    """The revisited ground truth of a prepared list, or None when it has none (no file, or null)."""
    if not path.is_file():
        return None
    try:
        truth = json.loads(path.read_text())
        if truth is None:
            return None
        queries = truth["queries"]
        gallery = image_list.gallery_rows()
        position = {int(row): i for i, row in enumerate(gallery)}
        rows = np.asarray([q["row"] for q in queries], dtype=np.int64)
        truths = [QueryTruth(*(np.asarray([position[r] for r in q[k]], dtype=np.int64) for k in ("easy", "hard", "junk")))
                  for q in queries]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RdistillError(f"{path}: malformed ground truth ({type(exc).__name__}: {exc})") from None
    return GroundTruth(truth.get("dataset", "revisited"), rows, truths)


def recall_within(recall_at: Sequence[int], image_list: ImageList, what: str) -> list[int]:
    """The recall@k depths a gallery can answer (k ≤ its size), with one log line naming those left out."""
    size = len(image_list.gallery_rows())
    kept = [k for k in recall_at if k <= size]
    if len(kept) < len(recall_at):
        log.info("%s: a gallery of %d images; recall@%s not scored", what, size,
                 ", @".join(str(k) for k in recall_at if k > size))
    return kept


def score(image_list: ImageList, q, db, ground_truth: GroundTruth | None, recall_at: Sequence[int]) -> dict:
    """Metrics of query features `q` against gallery features `db`, each an (N, D) array indexed by list
    row or a rows reader over the list's rows (pipeline.data.rows); only query and gallery rows are read.

    Revisited protocol when `ground_truth` is given (E/M/H mAP and mP@k), otherwise the class
    protocol (re-id camera filtering when the list has cameras).
    """
    q, db = as_rows(q), as_rows(db)
    db_rows = image_list.gallery_rows()
    if q.dim != db.dim:
        raise RdistillError(f"query features are {q.dim}-d but gallery features {db.dim}-d")
    gallery = db.with_rows(db_rows)
    if ground_truth is not None:  # mP@k caps k at the last positive, so any k is defined
        settings = [[truth.split(s) for s in SETTINGS] for truth in ground_truth.queries]
        ranks = positive_ranks(q.gather(ground_truth.query_rows), gallery, settings)
        return revisited_scores_from_ranks(ranks, ground_truth.queries, recall_at)
    q_rows = image_list.query_rows()
    too_deep = [k for k in recall_at if k > len(db_rows)]
    if too_deep:
        raise RdistillError(f"evaluate.recall_at: k={too_deep[0]} exceeds the gallery of {len(db_rows)} images "
                            f"in {image_list.source}")
    if not len(q_rows) or not len(db_rows):
        raise RdistillError(f"{image_list.source}: evaluation needs query and gallery rows (splits query/gallery/test)")
    labels = image_list.labels
    if (labels[q_rows] < 0).any():
        row = q_rows[np.flatnonzero(labels[q_rows] < 0)[0]]
        raise RdistillError(f"{image_list.source}: query row {row} ({image_list.ids[row]}) has no label")
    cams = image_list.cameras
    result = class_protocol(q.gather(q_rows), labels[q_rows], q_rows, gallery, labels[db_rows], db_rows, recall_at,
                            None if cams is None else cams[q_rows], None if cams is None else cams[db_rows])
    if result["queries_without_positives"]:
        log.warning("%d of %d queries have no positive in the gallery; they are left out of mAP and recall",
                    result["queries_without_positives"], result["queries"])
    return result


def pop_per_query(result: dict) -> dict[str, np.ndarray]:
    """Take every query's AP out of a result (metrics keep the summaries): {"symmetric": (Q,), …}, and for the
    revisited protocol {"symmetric.easy": (Q,), …}; NaN where a query has no positive."""
    out = {}
    for setting, scores in result.items():
        if not isinstance(scores, dict):
            continue
        if "per_query_ap" in scores:
            out[setting] = scores.pop("per_query_ap")
        for sub, inner in scores.items():
            if isinstance(inner, dict) and "per_query_ap" in inner:
                out[f"{setting}.{sub}"] = inner.pop("per_query_ap")
    return out


def average_results(results: list[dict]) -> dict:
    """One result from several seeds' results of the same protocol: every number averaged, the rest the first's."""
    first = results[0]
    out = {}
    for key, value in first.items():
        if isinstance(value, dict):
            out[key] = average_results([r[key] for r in results])
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            mean = float(np.mean([r[key] for r in results]))
            out[key] = int(mean) if isinstance(value, int) and mean == int(mean) else mean
        else:
            out[key] = value
    return out


def query_rows_of(image_list: ImageList, ground_truth: GroundTruth | None) -> np.ndarray:
    """The list rows of the queries, in the order per-query scores follow."""
    return ground_truth.query_rows if ground_truth is not None else image_list.query_rows()


def top_results(image_list: ImageList, q, db, query_rows: np.ndarray, ground_truth: GroundTruth | None,
                k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The k best gallery rows for each of `query_rows` (itself excluded) and whether each is correct.

    q, db: (N, D) arrays indexed by list row, or rows readers (only the query and gallery rows are
    read, the gallery block by block). Correct: same label (class protocol) or an easy/hard positive
    (revisited protocol).
    """
    q, db = as_rows(q), as_rows(db)
    gallery = image_list.gallery_rows()
    k = min(k, len(gallery) - 1)
    ranked = []
    for _, sims, _ in similarity_rows(q.gather(query_rows), db.with_rows(gallery), device=None):
        best = np.argpartition(-sims, k, axis=1)[:, :k + 1]
        best_sims = np.take_along_axis(sims, best, axis=1)
        order = np.lexsort((-best, -best_sims), axis=1)  # ties: the later gallery position first, as ranked
        ranked.append(np.take_along_axis(best, order, axis=1))
    rows = gallery[np.concatenate(ranked)]
    rows = np.stack([r[r != qr][:k] for r, qr in zip(rows, query_rows)])
    if ground_truth is None:
        correct = image_list.labels[rows] == image_list.labels[query_rows][:, None]
    else:
        truth_of = {int(r): t for r, t in zip(ground_truth.query_rows, ground_truth.queries)}
        correct = np.stack([np.isin(r, gallery[np.concatenate([truth_of[int(qr)].easy, truth_of[int(qr)].hard])])
                            for r, qr in zip(rows, query_rows)])
    return rows, correct


def revisited_lines(truth: GroundTruth | None, result: dict, ks) -> str:
    """The papers' E/M/H lines for every setting of a revisited-protocol result ('' otherwise)."""
    if truth is None:
        return ""
    return "\n".join(f"{setting}\n{format_revisited(truth.dataset, scores, ks)}" for setting, scores in result.items()
                     if isinstance(scores, dict) and "medium" in scores)
