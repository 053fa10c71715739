"""What the results table can claim: every figure it compares with a 95% interval, and the family of
differences it marks.

Per-query AP comes from the evaluation outputs (data/queries/), as (seeds, queries) arrays over the same
queries; each student's per-seed Recall@1 from metrics/eval (`by_seed`). A student's row is its mean over
seeds with a Student-t interval on the seed variance pooled over every student of that setting (each row's
own SD and own-t interval kept beside it); with no seed spread in the setting (one seed), the query bootstrap
alone. Teachers and the ensemble mean are trained once: their intervals are over the test queries only.
Differences form named families (pipeline.evaluate.intervals.family_differences): paired query bootstraps
widened by the pooled seeds' t interval, a two-sided p each, Holm-adjusted over the family. Every interval
is conditional on the teachers.

The result (metrics/comparison.json) holds each student's rows under its name, beside the reserved keys
`teachers`, `ensembles` (rows of models trained once), `pooled` (the seed SD per setting and figure),
`comparisons` (every difference by name: family, a, b, setting, diff, low, high, p, p_holm, marked) and
`families` (each family's members and what its marks can detect). Two families: `reference` (each method
against no_distill and its whitened teacher) and, when students are declared online, `caching` (each cached
student minus its online twin, trained alike but with the teacher run on every batch).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipeline.evaluate.intervals import (ALPHA, CONFIDENCE, POWER, binary_scores, bootstrap_interval,
                                         detectable_difference, family_differences, finite_queries, pooled_seed_interval,
                                         pooled_variance, seed_and_query_ratio, seed_interval, seeds_needed)

RESERVED = ("teachers", "ensembles", "pooled", "comparisons", "families")
SETTINGS = ("symmetric", "asymmetric")
LEVELS = {"mAP": "medium", "E mAP": "easy", "H mAP": "hard"}  # revisited: table column -> per-query setting
REFERENCE = "reference"  # the family of differences the table marks
REFERENCE_FAMILY = "symmetric vs no_distill and asymmetric vs the whitened teacher"
CACHING = "caching"  # the family of cached − online differences (what the cache costs)
CACHING_FAMILY = "each cached student minus its online twin (the same method, teacher and recipe)"


def main_setting(per_query: dict[str, np.ndarray], setting: str) -> np.ndarray | None:
    """A setting's per-query AP, (seeds, queries): the class protocol's own, the revisited protocol's medium."""
    found = per_query.get(setting, per_query.get(f"{setting}.medium"))
    return None if found is None else np.atleast_2d(found)


def level_scores(per_query: dict[str, np.ndarray], setting: str) -> dict[str, np.ndarray]:
    """A setting's per-query AP by table column, each (seeds, queries): "mAP" (the class protocol's own, the
    revisited protocol's medium) and, revisited, "E mAP" and "H mAP"."""
    if setting in per_query:
        return {"mAP": np.atleast_2d(per_query[setting])}
    return {column: np.atleast_2d(per_query[f"{setting}.{level}"]) for column, level in LEVELS.items()
            if f"{setting}.{level}" in per_query}


def recall_columns(scores: dict) -> list[str]:
    """The Recall@k figures a result holds ("R@1", "R@5", ...), by k."""
    return sorted((c for c in scores if c.startswith("R@")), key=lambda c: int(c[2:]))


def seed_recall(result: dict, setting: str, column: str = "R@1") -> np.ndarray | None:
    """A student's per-seed Recall@k of a setting (metrics/eval's `by_seed`); None where it is not stored."""
    by_seed = result.get("by_seed", {})
    values = [scores[setting][column] for scores in by_seed.values() if column in scores.get(setting, {})]
    return np.asarray(values, dtype=np.float64) if values and len(values) == len(by_seed) else None


def recall_scores(scores: dict, column: str = "R@1") -> np.ndarray | None:
    """Per-query 0/1 Recall@k (a query's hit within the first k is 0 or 1) rebuilt from a result's rate and its
    queries with positives (binary_scores)."""
    if column not in scores or "queries" not in scores:
        return None
    return binary_scores(scores[column], scores["queries"] - scores.get("queries_without_positives", 0))


def query_row(scores: np.ndarray, resamples_of, key: str = "mAP") -> dict:
    """A figure of a model trained once: the mean of its per-query scores and their query-bootstrap interval."""
    scores = scores[np.isfinite(scores)]
    mean, low, high = bootstrap_interval(scores, resamples_of(len(scores)))
    return {key: mean, "low": low, "high": high, "over": "queries", "queries": int(len(scores))}


def seed_row(per_seed: np.ndarray, pooled: tuple[float, int], one_seed: np.ndarray | None, resamples_of,
             key: str = "mAP") -> dict:
    """A student's figure: the mean over seeds with the pooled-variance t interval (low, high; df), and its own
    SD and own-t interval (sd, own_low, own_high). With no seed spread measured in its setting, the interval
    is the query bootstrap of `one_seed`, its first seed's per-query scores ("over": "queries")."""
    variance, df = pooled
    mean, low, high = pooled_seed_interval(per_seed, variance, df)
    _, own_low, own_high = seed_interval(per_seed)
    row = {key: mean, "low": low, "high": high, "over": "seeds", "seeds": int(len(per_seed)), "df": int(df),
           "sd": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else float("nan"),
           "own_low": own_low, "own_high": own_high}
    if df < 1 and one_seed is not None:
        _, low, high = bootstrap_interval(one_seed, resamples_of(len(one_seed)))
        row.update({"low": low, "high": high, "over": "queries"})
    return row


def once_trained_rows(result: dict, per_query: dict[str, np.ndarray], settings, resamples_of) -> dict[str, dict]:
    """Rows of a model trained once (a teacher's raw and whitened, the ensemble mean), per setting: mAP and its
    interval over queries only, and under "intervals" the other figures (E/H mAP, Recall@1) likewise."""
    rows = {}
    for setting in settings:
        levels = level_scores(per_query, setting)
        if setting not in result or "mAP" not in levels:
            continue
        rows[setting] = query_row(levels.pop("mAP")[0], resamples_of)
        others = {column: query_row(scores[0], resamples_of, "value") for column, scores in levels.items()}
        for column in recall_columns(result[setting]):
            recall = recall_scores(result[setting], column)
            if recall is not None:
                others[column] = query_row(recall, resamples_of, "value")
        if others:
            rows[setting]["intervals"] = others
    return rows


def students_of(comparison: dict) -> dict[str, dict]:
    """The students' rows of a comparison (its reserved keys left out)."""
    return {name: rows for name, rows in comparison.items() if name not in RESERVED}


def compare_family(family: str, pairs: list[tuple[dict, np.ndarray, np.ndarray]], resamples_of,
                   pooled: dict[str, tuple[float, int]] | None = None) -> dict[str, dict]:
    """One named family of differences, by name: `pairs` are (description, A, B), the description holding
    name, a, b and setting; family_differences gives the figures, Holm-adjusted over these pairs alone."""
    figures = family_differences([(d["name"], a, b) for d, a, b in pairs], resamples_of, pooled)
    return {d["name"]: {"family": family, **d, **f} for (d, _, _), f in zip(pairs, figures)}


def compare_students(students: dict[str, dict], student_queries: dict[str, dict[str, np.ndarray]],
                     teacher_queries: dict[str, dict[str, np.ndarray]], resamples_of: Callable,
                     teachers: dict[str, dict] | None = None, ensembles: dict[str, dict] | None = None,
                     ensemble_queries: dict[str, dict[str, np.ndarray]] | None = None,
                     online: dict[str, str] | None = None) -> dict:
    """Per student and setting: the mAP row (seed_row) with "intervals" for its other figures (E/H mAP, R@1),
    the difference "vs_no_distill" (symmetric) or "vs_teacher" (asymmetric, against the whitened teacher of its
    gallery) and, asymmetric, the "ratio" to that teacher's mAP; under the reserved keys (module docstring) the
    teachers' and ensembles' rows, the pooled seed SDs, the comparisons and their families.

    students: metrics/eval contents by name; teachers, ensembles: metrics/eval_teacher and eval_ensemble
    contents; *_queries: per-query AP by name and setting; resamples_of(n): query resamples; online: every
    online student with its cached twin (None without one), by name: the pairs with both evaluated form the
    `caching` family, a difference "vs_cached" on the online student's rows, and every online student stays
    out of the reference family (they measure the cache, they are not a method).
    """
    measuring = set(online or {})
    online = {o: c for o, c in (online or {}).items() if o in student_queries and c in student_queries}
    clash = sorted(set(students) & set(RESERVED))
    if clash:
        raise ValueError(f"student names {clash} are reserved in the comparison; rename them")
    per_seed: dict[tuple[str, str], dict[str, np.ndarray]] = {}  # (setting, figure) -> name -> (seeds,)
    one_seed: dict[tuple[str, str, str], np.ndarray] = {}
    scored: dict[str, dict[str, np.ndarray]] = {}  # name -> setting -> main per-query AP (seeds, queries)
    for name in sorted(students):
        if name not in student_queries:
            continue
        for setting in SETTINGS:
            levels = level_scores(student_queries[name], setting)
            if "mAP" not in levels:
                continue
            scored.setdefault(name, {})[setting] = levels["mAP"]
            for column, ap in levels.items():
                ap = ap[:, finite_queries(ap)]
                per_seed.setdefault((setting, column), {})[name] = ap.mean(axis=1)
                one_seed[setting, column, name] = ap[0]
            first_seed = next(iter(students[name].get("by_seed", {}).values()), {})
            for column in recall_columns(first_seed.get(setting, {})):
                recall = seed_recall(students[name], setting, column)
                if recall is not None:
                    per_seed.setdefault((setting, column), {})[name] = recall
                    one_seed[setting, column, name] = recall_scores(students[name].get(setting, {}), column)
    pooled = {key: pooled_variance(groups.values()) for key, groups in per_seed.items()}

    out: dict = {}
    for (setting, column), groups in sorted(per_seed.items()):
        for name, values in groups.items():
            row = seed_row(values, pooled[setting, column], one_seed[setting, column, name], resamples_of,
                           "mAP" if column == "mAP" else "value")
            settings = out.setdefault(name, {})
            if column == "mAP":
                settings[setting] = {**row, **settings.get(setting, {})}
            else:
                settings.setdefault(setting, {}).setdefault("intervals", {})[column] = row

    references = [n for n in scored if students[n]["method"] == "no_distill" and "symmetric" in scored[n]]
    pairs = []
    for name, settings in sorted(scored.items()):
        if references and students[name]["method"] != "no_distill" and "symmetric" in settings and name not in measuring:
            pairs.append(({"name": f"{name} symmetric vs no_distill", "a": name, "b": references[0],
                           "setting": "symmetric", "row": "vs_no_distill"}, settings["symmetric"],
                          scored[references[0]]["symmetric"]))
        whitened = main_setting(teacher_queries.get(students[name].get("teacher"), {}), "whitened")
        if "asymmetric" in settings and whitened is not None:
            teacher = students[name]["teacher"]
            if name not in measuring:
                pairs.append(({"name": f"{name} asymmetric vs {teacher} whitened", "a": name,
                               "b": f"teacher {teacher} whitened", "setting": "asymmetric", "row": "vs_teacher"},
                              settings["asymmetric"], whitened))
            keep = finite_queries(settings["asymmetric"], whitened)
            ratio, low, high = seed_and_query_ratio(settings["asymmetric"][:, keep], whitened[:, keep],
                                                    resamples_of(int(keep.sum())), pooled=pooled["asymmetric", "mAP"])
            out[name]["asymmetric"]["ratio"] = {"value": ratio, "low": low, "high": high, "over": "queries and seeds",
                                                "of": f"teacher {teacher} whitened"}
    comparisons = compare_family(REFERENCE, pairs, resamples_of,
                                 {d["name"]: pooled[d["setting"], "mAP"] for d, _, _ in pairs})
    twins = [({"name": f"{cached} − {name} {setting}", "a": cached, "b": name, "setting": setting,
               "row": "vs_cached", "on": name}, scored[cached][setting], scored[name][setting])
             for name, cached in sorted(online.items()) for setting in SETTINGS
             if setting in scored.get(name, {}) and setting in scored.get(cached, {})]
    caching = compare_family(CACHING, twins, resamples_of, {d["name"]: pooled[d["setting"], "mAP"] for d, _, _ in twins})
    for figures in [*comparisons.values(), *caching.values()]:
        out[figures.pop("on", figures["a"])][figures["setting"]][figures.pop("row")] = figures

    out["teachers"] = {name: once_trained_rows(result, teacher_queries.get(name, {}), ("raw", "whitened"), resamples_of)
                       for name, result in sorted((teachers or {}).items()) if name in teacher_queries}
    out["ensembles"] = {name: once_trained_rows(result, (ensemble_queries or {}).get(name, {}), ("symmetric",),
                                                resamples_of)
                        for name, result in sorted((ensembles or {}).items()) if name in (ensemble_queries or {})}
    out["pooled"] = pooled_summary(per_seed, pooled)
    out["comparisons"] = {**comparisons, **caching}
    out["families"] = {family: family_summary(description, members, out["pooled"])
                       for family, description, members in ((REFERENCE, REFERENCE_FAMILY, comparisons),
                                                            (CACHING, CACHING_FAMILY, caching)) if members}
    return out


def pooled_summary(per_seed: dict[tuple[str, str], dict[str, np.ndarray]],
                   pooled: dict[tuple[str, str], tuple[float, int]]) -> dict[str, dict]:
    """Per setting and figure: the pooled seed SD, its df, how many students it pools, their seeds (the fewest)
    and the range of their own SDs (pooling assumes one seed variance for all of them)."""
    out: dict[str, dict] = {}
    for (setting, column), groups in sorted(per_seed.items(), key=lambda kv: (SETTINGS.index(kv[0][0]), kv[0][1])):
        variance, df = pooled[setting, column]
        own = [float(v.std(ddof=1)) for v in groups.values() if len(v) > 1]
        out.setdefault(setting, {})[column] = {
            "sd": float(np.sqrt(variance)), "df": int(df), "students": len(own),
            "seeds": int(min(len(v) for v in groups.values())),
            "own_sd_min": min(own) if own else float("nan"), "own_sd_max": max(own) if own else float("nan")}
    return out


def family_summary(description: str, comparisons: dict[str, dict], pooled: dict[str, dict]) -> dict:
    """What a family's marks mean: its members, the level, and per setting the minimum detectable difference
    (MDD, 80% power: at 5% per comparison and at Holm's first step, 5% / m) from the pooled seed SD; and how many
    seeds per side the smallest marked difference would need for 80% power."""
    members = list(comparisons)
    detectable = {}
    for setting in [s for s in SETTINGS if any(c["setting"] == s for c in comparisons.values())]:
        spread = pooled.get(setting, {}).get("mAP")
        if not spread:
            continue
        sides = 1 if all(c["seeds_b"] == 1 for c in comparisons.values() if c["setting"] == setting) else 2
        detectable[setting] = {
            "sd": spread["sd"], "df": spread["df"], "seeds": spread["seeds"], "sides": sides,
            "mdd": detectable_difference(spread["sd"], spread["df"], spread["seeds"], sides),
            "mdd_holm_first": detectable_difference(spread["sd"], spread["df"], spread["seeds"], sides,
                                                    ALPHA / len(members))}
    marked = sorted((c for c in comparisons.values() if c["marked"]), key=lambda c: abs(c["diff"]))
    smallest = None
    if marked:
        c = marked[0]
        spread = pooled[c["setting"]]["mAP"]
        smallest = {"name": c["name"], "diff": c["diff"],
                    "seeds_needed": seeds_needed(c["diff"], spread["sd"], spread["students"],
                                                 detectable[c["setting"]]["sides"])}
    return {"description": description, "members": members, "size": len(members),
            "adjustment": "Holm 1979", "alpha": ALPHA, "confidence": CONFIDENCE, "power": POWER,
            "p_method": "two-sided, the widened interval inverted (1 - the smallest confidence at which it reaches 0)",
            "detectable": detectable, "smallest_marked": smallest}


def interval_cell(figures: dict | None) -> str:
    """"[low, high]" of a figure, or "–" without one."""
    if not figures or not np.isfinite(figures.get("low", np.nan)):
        return "–"
    return f"[{figures['low']:.3f}, {figures['high']:.3f}]"


def p_text(p: float) -> str:
    """A p-value as the table prints it: three decimals, "< 0.001" below that."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def difference_note(label: str, figures: dict) -> str:
    """"+0.138 [+0.120, +0.155] vs no_distill, Holm p 0.004 *": the unadjusted interval; the star: the Holm-adjusted
    p at most 5% with the seeds' spread measured (figures["marked"])."""
    star = " *" if figures.get("marked") else ""
    holm = f", Holm p {p_text(figures['p_holm'])}" if "p_holm" in figures else ""
    return f"{figures['diff']:+.3f} [{figures['low']:+.3f}, {figures['high']:+.3f}] vs {label}{holm}{star}"


def ratio_note(ratio: dict) -> str:
    """"1.02 [0.99, 1.05] × whitened teacher mAP" (the interval: query bootstrap and seeds, in quadrature)."""
    return f"{ratio['value']:.2f} [{ratio['low']:.2f}, {ratio['high']:.2f}] × whitened teacher mAP"
