"""What the results table can claim: each student's mAP with a 95% interval, and its paired difference
from the reference it must beat (no_distill symmetric; the whitened teacher asymmetric).

Per-query AP comes from the evaluation outputs (data/queries/), as (seeds, queries) arrays over the same
queries. With several seeds a row's interval is over seeds (Student t); with one it comes from
resampling the queries alone. Differences are paired bootstraps over queries with seeds averaged,
widened by the seeds' spread (pipeline.evaluate.intervals). Teachers are trained once: every interval is
conditional on them.
"""
from __future__ import annotations

import numpy as np

from pipeline.evaluate.intervals import bootstrap_interval, excludes_zero, seed_and_query_difference, seed_interval


def main_setting(per_query: dict[str, np.ndarray], setting: str) -> np.ndarray | None:
    """A setting's per-query AP, (seeds, queries): the class protocol's own, the revisited protocol's medium."""
    found = per_query.get(setting, per_query.get(f"{setting}.medium"))
    return None if found is None else np.atleast_2d(found)


def finite_columns(*arrays: np.ndarray) -> np.ndarray:
    """Queries scored in every array (a query without positives has NaN AP and is left out, as in mAP)."""
    return np.logical_and.reduce([np.isfinite(a).all(axis=0) for a in arrays])


def row_interval(ap: np.ndarray, resamples_of) -> dict:
    """The mean mAP over seeds and its 95% interval (over seeds, or over queries with one seed)."""
    ap = ap[:, finite_columns(ap)]
    per_seed = ap.mean(axis=1)
    if len(per_seed) > 1:
        mean, low, high = seed_interval(per_seed)
        return {"mAP": mean, "low": low, "high": high, "over": "seeds", "seeds": len(per_seed)}
    mean, low, high = bootstrap_interval(ap[0], resamples_of(ap.shape[1]))
    return {"mAP": mean, "low": low, "high": high, "over": "queries", "seeds": 1}


def difference(a: np.ndarray, b: np.ndarray, resamples_of) -> dict:
    """A − B over the queries both score: the mean, its interval (paired query bootstrap widened by the seeds'
    spread), and whether it excludes 0."""
    keep = finite_columns(a, b)
    diff, low, high = seed_and_query_difference(a[:, keep], b[:, keep], resamples_of(int(keep.sum())))
    return {"diff": diff, "low": low, "high": high, "excludes_zero": excludes_zero(low, high)}


def compare_students(students: dict[str, dict], student_queries: dict[str, dict[str, np.ndarray]],
                     teacher_queries: dict[str, dict[str, np.ndarray]], resamples_of) -> dict[str, dict]:
    """Per student and setting: {"mAP", "low", "high", "over", "seeds"} and the differences "vs_no_distill"
    (symmetric) and "vs_teacher" (asymmetric, against the whitened teacher of its gallery).

    students: metrics/eval contents by name; student_queries: per-query AP by name and setting;
    teacher_queries: per-query AP of each teacher's "whitened" setting; resamples_of(n): query resamples.
    """
    references = [n for n, r in students.items() if r["method"] == "no_distill" and n in student_queries]
    reference = main_setting(student_queries[references[0]], "symmetric") if references else None
    out: dict[str, dict] = {}
    for name, result in sorted(students.items()):
        queries = student_queries.get(name)
        if queries is None:
            continue
        out[name] = {}
        symmetric = main_setting(queries, "symmetric")
        if symmetric is not None:
            out[name]["symmetric"] = row_interval(symmetric, resamples_of)
            if reference is not None and result["method"] != "no_distill":
                out[name]["symmetric"]["vs_no_distill"] = difference(symmetric, reference, resamples_of)
        asymmetric = main_setting(queries, "asymmetric")
        if asymmetric is not None:
            out[name]["asymmetric"] = row_interval(asymmetric, resamples_of)
            teacher = teacher_queries.get(result["teacher"], {})
            whitened = main_setting(teacher, "whitened")
            if whitened is not None:
                out[name]["asymmetric"]["vs_teacher"] = difference(asymmetric, whitened, resamples_of)
    return out


def interval_cell(figures: dict) -> str:
    """"[low, high]" of a row's mAP, or "–" without one."""
    return f"[{figures['low']:.3f}, {figures['high']:.3f}]" if np.isfinite(figures.get("low", np.nan)) else "–"


def difference_note(label: str, figures: dict) -> str:
    """"+0.138 [0.120, 0.155] vs no_distill *" (the star: the interval excludes 0)."""
    star = " *" if figures["excludes_zero"] else ""
    return f"{figures['diff']:+.3f} [{figures['low']:+.3f}, {figures['high']:+.3f}] vs {label}{star}"
