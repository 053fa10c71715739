"""Revisited Oxford / Paris protocol (revisited Oxford/Paris, Radenović et al., CVPR 2018): Easy, Medium, Hard mAP and mP@k with junk removed."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

SETTINGS = ("easy", "medium", "hard")


@dataclass(frozen=True)
class QueryTruth:
    """One query's ground truth as gallery positions: easy, hard and junk lists."""

    easy: np.ndarray
    hard: np.ndarray
    junk: np.ndarray

    def split(self, setting: str) -> tuple[np.ndarray, np.ndarray]:
        """(positives, ignored) of a setting: E = easy / junk+hard, M = easy+hard / junk, H = hard / junk+easy."""
        if setting == "easy":
            return self.easy, np.concatenate([self.junk, self.hard])
        if setting == "medium":
            return np.concatenate([self.easy, self.hard]), self.junk
        if setting == "hard":
            return self.hard, np.concatenate([self.junk, self.easy])
        raise ValueError(f"unknown setting {setting!r}")


def reference_ap(ranks: np.ndarray, n_positives: int) -> float:
    """AP with the benchmark's interpolation (revisited Oxford/Paris, Radenović et al., CVPR 2018): Σ_i (i/r_i + (i+1)/(r_i+1)) / 2 / n_positives.

    ranks: sorted 0-based ranks of the positives found; i/r_i is taken as 1 when r_i = 0.
    """
    i = np.arange(len(ranks), dtype=np.float64)
    r = ranks.astype(np.float64)
    before = np.divide(i, r, out=np.ones_like(i), where=r > 0)
    after = (i + 1) / (r + 1)
    return float(((before + after) / 2).sum() / n_positives)


def precision_at_k(ranks: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """The benchmark's mP@k term: with k' = min(k, 1-based rank of the last positive), positives in the first k' / k'."""
    one_based = ranks + 1
    out = []
    for k in ks:
        k_eff = min(int(one_based.max()), k)
        out.append((one_based <= k_eff).sum() / k_eff)
    return np.asarray(out, dtype=np.float64)


def revisited_scores_from_ranks(ranks: Iterable[Sequence[np.ndarray]], truths: Sequence[QueryTruth],
                                ks: Sequence[int] = (1, 5, 10)) -> dict:
    """mAP and mP@k per setting over queries; a query without positives in a setting is left out of it.

    ranks: per query (in the order of `truths`), the sorted 0-based ranks of its positives among the
    kept items for each of SETTINGS (see pipeline.evaluate.ranks).
    """
    aps = {s: [] for s in SETTINGS}
    prs = {s: [] for s in SETTINGS}
    per_query = {s: [] for s in SETTINGS}  # every query's AP in the order of `truths`, NaN without positives
    for per_setting, truth in zip(ranks, truths, strict=True):
        for setting, setting_ranks in zip(SETTINGS, per_setting):
            positives, _ = truth.split(setting)
            if len(positives) == 0:
                per_query[setting].append(float("nan"))
                continue
            aps[setting].append(reference_ap(setting_ranks, len(positives)))
            per_query[setting].append(aps[setting][-1])
            prs[setting].append(precision_at_k(setting_ranks, ks))
    result = {}
    for setting in SETTINGS:
        result[setting] = {
            "mAP": float(np.mean(aps[setting])) if aps[setting] else float("nan"),
            **{f"mP@{k}": float(np.mean([p[j] for p in prs[setting]])) if prs[setting] else float("nan")
               for j, k in enumerate(ks)},
            "queries": len(aps[setting]),
            "per_query_ap": np.asarray(per_query[setting], dtype=np.float64),
        }
    return result


def format_revisited(dataset: str, result: dict, ks: Sequence[int] = (1, 5, 10)) -> str:
    """Two lines in the layout the revisited benchmark's papers print (percentages)."""
    short = {"easy": "E", "medium": "M", "hard": "H"}
    maps = ", ".join(f"{short[s]}: {100 * result[s]['mAP']:.2f}" for s in SETTINGS)
    prs = ", ".join(short[s] + ": [" + " ".join(f"{100 * result[s]['mP@' + str(k)]:.2f}" for k in ks) + "]"
                    for s in SETTINGS)
    return f">> {dataset}: mAP {maps}\n>> {dataset}: mP@k{list(ks)} {prs}"
