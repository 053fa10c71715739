"""The results table: teachers, distilled students (symmetric and asymmetric) and references, every compared
figure with its interval (pipeline.report.comparison) and a note on what the intervals and marks mean."""
from __future__ import annotations

import numpy as np

from pipeline.evaluate.intervals import CONFIDENCE
from pipeline.report.comparison import (CACHING, REFERENCE, difference_note, interval_cell, p_text, ratio_note,
                                       students_of)

CLASS_COLUMNS = ("mAP", "R@1", "R@5", "R@10")
REVISITED_COLUMNS = ("E mAP", "M mAP", "H mAP", "M mP@10")


def cells(scores: dict) -> dict:
    """Table cells of one result: class protocol as is, revisited flattened to E/M/H columns."""
    if "medium" not in scores:
        return scores
    return {"E mAP": scores["easy"]["mAP"], "M mAP": scores["medium"]["mAP"], "H mAP": scores["hard"]["mAP"],
            "M mP@10": scores["medium"].get("mP@10", float("nan")), "mAP": scores["medium"]["mAP"]}


def protocol_of(teachers: dict[str, dict], students: dict[str, dict]) -> str:
    """"revisited" when any result holds the revisited protocol's easy/medium/hard settings, else "class"."""
    every = [r for t in teachers.values() for r in (t["raw"], t["whitened"])] + [s["symmetric"] for s in students.values()]
    return "revisited" if any("medium" in r for r in every) else "class"


def results_title(teachers: dict[str, dict], students: dict[str, dict]) -> str:
    """The report's heading, naming the protocol its table holds."""
    if protocol_of(teachers, students) == "revisited":
        return "# Results (revisited protocol: easy, medium and hard mAP; mAP = medium)"
    return "# Results (class protocol)"


def teacher_alignment(ensembles: dict[str, dict]) -> str:
    """How alike the whitened teachers' cosine similarities spread (Whiten-MTD's premise), from the
    ensemble evaluation's diagnostics: each teacher's variance of cosines and the isotropic 1/D."""
    for result in ensembles.values():
        angles = {k: d["angles"] for k, d in result.get("diagnostics", {}).items() if "angles" in d}
        if angles:
            isotropic = next(iter(angles.values()))["isotropic_var_cos"]
            return ("variance of whitened cosines: " + ", ".join(f"{k} {a['var_cos']:.3f}" for k, a in angles.items())
                    + f" (isotropic {isotropic:.3f})")
    return ""


COST_COLUMNS = ("params (M)", "GFLOPs", "ms/image")


def cost_cells(cost: dict | None) -> list[str]:
    """The cost columns of one row ("–" where the cost is unknown, e.g. an imported teacher)."""
    if not cost:
        return ["–"] * len(COST_COLUMNS)
    return [f"{cost['params_m']:.1f}", f"{cost['gflops']:.3f}", f"{cost['ms_per_image']:.1f}"]


def summed_cost(costs: dict[str, dict], names: list[str]) -> dict | None:
    """Several models' costs added (an ensemble mean runs every teacher), None if one is unknown."""
    if not all(n in costs for n in names):
        return None
    return {key: sum(costs[n][key] for n in names) for key in ("params_m", "gflops", "ms_per_image")}


def starts_note(trained: dict[str, dict]) -> str:
    """Which weights the students started from (metrics/train/S.json's `init`): random, or each checkpoint."""
    starts = sorted({record.get("init", "none") for record in trained.values()})
    if not starts:
        return ""
    named = ", ".join("random weights (train.student.init: none)" if s == "none" else s for s in starts)
    return f"\nStudents started from {named}.\n"


def _seeds_text(seeds: list[int]) -> str:
    """Seed counts as the note prints them: "3", or "2/3" when students differ."""
    return "/".join(map(str, seeds))


def intervals_note(comparison: dict, resamples: int) -> str:
    """What the table's intervals and marks mean, under it: the pooled seed SDs, the models trained once, the
    family of differences and its multiplicity adjustment, what a mark can detect at these seeds, and why one
    seed marks nothing (every figure from `comparison`, pipeline.report.comparison)."""
    rows = [f for settings in students_of(comparison).values() for f in settings.values()]
    if not rows:
        return ""
    level, quantile = f"{CONFIDENCE:.0%}", f"{(1 + CONFIDENCE) / 2:g}"
    seeds = sorted({f["seeds"] for f in rows})
    pooled = {s: p["mAP"] for s, p in comparison.get("pooled", {}).items() if "mAP" in p}
    family = comparison.get("families", {}).get(REFERENCE)
    measured = seeds != [1] and any(p["df"] >= 1 for p in pooled.values())
    if measured:
        spreads = "; ".join(f"{setting}: s_pooled {p['sd']:.4f} over {p['students']} students, df = Σ(n_i − 1) = "
                            f"{p['df']}, their own SDs {p['own_sd_min']:.4f}–{p['own_sd_max']:.4f}"
                            for setting, p in pooled.items())
        recall = any("R@1" in f.get("intervals", {}) for f in rows)
        rows_text = (f"Students' rows: the mean over {_seeds_text(seeds)} training seeds with a {level} interval, mean ± "
                     f"t_{{{quantile}, df}} · s_pooled / √n, the seeds' SD pooled over every student of the setting "
                     f"({spreads}){'; R@1 likewise (R@5 and R@10 too, in metrics/comparison.json)' if recall else ''}. Pooling assumes one seed variance per setting; "
                     "each row's own SD and own-t interval are in metrics/comparison.json (sd, own_low, own_high).")
    else:
        rows_text = ("One seed per student: no seed spread can be measured, so a student's interval comes from "
                     f"resampling the test queries alone ({resamples:,} seeded resamples), not from retraining.")
    if comparison.get("teachers") or comparison.get("ensembles"):
        rows_text += (" Teachers (raw, whitened) and the ensemble mean (EM) are trained once, so every interval is "
                      "conditional on them; their own intervals are over the test queries only (a bootstrap, "
                      f"{resamples:,} seeded resamples; R@1's from its rate, a 0/1 score per query).")
    else:
        rows_text += " The teachers are trained once, so every interval is conditional on them."
    text = [rows_text]
    if family:
        seed_term = ("widened on each side in quadrature by the pooled seeds' t interval (a seed moves every query "
                     "together)" if measured else "not widened: no seed spread was measured")
        differences = (f"Differences: a paired bootstrap over the queries ({resamples:,} seeded resamples; per query, the "
                       f"AP averaged over seeds), {seed_term}; the brackets are the unadjusted {level} interval. Each p "
                       "is two-sided, that interval inverted (1 − the smallest confidence at which it reaches 0). "
                       f"Family: the {family['size']} differences in this table, {family['description']}; `*` marks "
                       f"those whose Holm-adjusted p (Holm 1979, over the family, printed beside each) is at most "
                       f"{family['alpha']:g} and whose seeds' spread is measured.")
        if measured and any("ratio" in settings.get("asymmetric", {}) for settings in students_of(comparison).values()):
            differences += (" × whitened teacher mAP: the ratio of means, a paired query bootstrap of the ratio widened "
                            "in quadrature by the student's pooled seed term over the teacher's mAP (delta method).")
        text.append(differences)
        text.append(power_sentence(family) if measured else
                    "With one seed no difference is marked: the query bootstrap alone undercovers when a training seed "
                    "moves a whole model (on synthetic scores with such seed shifts it held a null difference in 58 of "
                    "200 trials), and without the seeds' spread no minimum detectable difference can be stated; train "
                    "two seeds or more (`train.seeds`). A difference without a mark is not evidence of no effect.")
    return "\n" + "\n\n".join(text) + "\n"


def cached_note(figures: dict) -> str:
    """"csd − online +0.012 [−0.020, +0.044], Holm p 0.412": a cached student minus its online twin (family caching)."""
    star = " *" if figures.get("marked") else ""
    return (f"{figures['a']} − online {figures['diff']:+.3f} [{figures['low']:+.3f}, {figures['high']:+.3f}], "
            f"Holm p {p_text(figures['p_holm'])}{star}")


def caching_note(comparison: dict, training: dict[str, dict]) -> str:
    """What the cache costs, under the table: the family of cached − online differences, what it can detect,
    and the cached and online students' seconds per epoch (metrics/train); "" without online students."""
    family = comparison.get("families", {}).get(CACHING)
    if not family:
        return ""
    members = [comparison["comparisons"][name] for name in family["members"]]
    listed = "; ".join(f"{c['name']} {c['diff']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}], Holm p {p_text(c['p_holm'])}"
                       + (" *" if c["marked"] else "") for c in members)
    text = ("What the cache costs: each online student (`online: true`) trains as its cached twin, but against its "
            "teacher run on a fresh crop of every image at every step, whitened as the cache is (CSD's neighbours stay "
            f"the cached plain images). Family: the {family['size']} cached − online differences, intervals and Holm "
            f"as above, over these alone: {listed}.")
    marked = [c for c in members if c["marked"]]
    if marked:
        text += " " + "; ".join(f"{c['a']} {c['setting']}: the cache {'gains' if c['diff'] > 0 else 'costs'} "
                                f"{abs(c['diff']):.3f} mAP" for c in marked) + "."
    else:
        bound = max(max(abs(c["low"]), abs(c["high"])) for c in members)
        mdd = ", ".join(f"{d['mdd']:.3f} {s}" for s, d in family["detectable"].items())
        text += (" None is marked: at these seeds the cache's cost is not detectable (MDD " + mdd + "); a cost or "
                 f"gain up to {bound:.3f} mAP remains compatible with the intervals.")
    pairs = sorted({(c["a"], c["b"]) for c in members})
    speeds = [(training.get(a, {}).get("seconds_per_epoch"), training.get(b, {}).get("seconds_per_epoch"))
              for a, b in pairs]
    if all(a and b for a, b in speeds):
        text += (" Per epoch, on the machine that trained them: " + "; ".join(
            f"{a} {sa:.1f} s cached, {sb:.1f} s online ({sb / sa:.1f}× slower)" for (a, _), (sa, sb) in zip(pairs, speeds))
            + ".")
    return "\n" + text + "\n"


def teacher_share_note(share: dict | None, comparison: dict) -> str:
    """The teachers' share, under the table: how far refitting the teachers with other seeds moved the rows and
    the reference differences (benchmarks/teacher_seeds: `share` is its JSON, None when it measured another list),
    beside what the student seeds alone put there, and which marked differences survive the teacher axis."""
    figures = share["figures"] if share else {}
    dependent = {name: f for name, f in figures.get("rows", {}).items() if f["sd_between"] > 0}  # others read no teacher
    if not dependent:
        return ("\nThe teachers' share is not measured for this list and these settings: `python -m "
                "benchmarks.teacher_seeds` refits the teachers with other seeds (teacher.seed) and reruns the students "
                "from each.\n")
    seeds = share["settings"]["teacher_seeds"]
    between = [f["sd_between"] for f in dependent.values()]
    own = {name: f["sd_teacher"] for name, f in dependent.items() if f["sd_teacher"] > 0}
    seed_share = "; ".join(f"{setting} {p['mAP']['sd'] / np.sqrt(p['mAP']['seeds']):.3f}"
                           for setting, p in comparison.get("pooled", {}).items() if "mAP" in p)
    by_kind: dict[str, list[float]] = {}
    for d in figures["differences"].values():
        if d["sd_between"] > 0:
            by_kind.setdefault(d["kind"], []).append(d["sd_between"])
    kinds = "; ".join(f"differences {kind}: median {np.median(v):.3f}, up to {max(v):.3f}" for kind, v in by_kind.items())
    largest = max(own, key=own.get) if own else None
    text = (f"The teachers' share (`python -m benchmarks.teacher_seeds`, on this list): refitting the teachers with "
            f"{len(seeds)} seeds ({', '.join(map(str, seeds))}) and retraining every student from each moves the "
            f"{len(dependent)} rows that learn from them by an SD between teacher seeds of {np.median(between):.3f} "
            f"(median; {min(between):.3f} to {max(between):.3f}), where the student seeds alone would put "
            f"s_pooled / √n ({seed_share}); the teacher's own SD beyond that (method of moments) is 0 for "
            f"{len(dependent) - len(own)} rows"
            + (f" and largest for {largest} ({own[largest]:.3f})" if largest else "")
            + f"; {kinds}. Rows that read no teacher (no_distill, and contrastive with label pairs) do not move. "
            "A difference against no_distill carries the teacher's share on one side; against the whitened teacher on "
            "both, where it can partly cancel. ")
    marked = [name for name, c in comparison.get("comparisons", {}).items() if c.get("marked") and c["family"] == REFERENCE]
    measured = {name: figures["differences"][name] for name in marked if name in figures["differences"]}
    if measured:
        survive = [name for name, d in measured.items() if d["survives"]]
        keep = [name for name, d in measured.items() if d["same_sign"]]
        text += (f"Of the {len(measured)} marked differences, {len(keep)} keep their sign under every teacher seed and "
                 f"{len(survive)} have a teacher-level interval (mean over teacher seeds ± t_{{0.975, "
                 f"{len(seeds) - 1}}} · SD / √{len(seeds)}) that excludes 0"
                 + (f": {', '.join(survive)}." if survive else "."))
    return "\n" + text.rstrip() + "\n"


def power_sentence(family: dict) -> str:
    """What a family's marks can detect: the minimum detectable difference per setting, the seeds the smallest
    marked difference would need, and what an unmarked difference means."""
    mdd = family["detectable"]
    parts = [f"{d['mdd']:.3f} {setting} (k = {d['sides']}{', against a model trained once' if d['sides'] == 1 else ''}; "
             f"{d['mdd_holm_first']:.3f} at Holm's first step, α = {family['alpha']:g}/{family['size']})"
             for setting, d in mdd.items()]
    n = sorted({d["seeds"] for d in mdd.values()})
    text = (f"At n = {_seeds_text(n)} seeds per side a difference is detected with {family['power']:.0%} power only "
            f"above the minimum detectable difference MDD ≈ (t_{{{1 - family['alpha'] / 2:g}, df}} + "
            f"t_{{{family['power']:g}, df}}) · s_pooled · √(k/n), k = 2 when both sides vary with their seeds (the "
            "seeds' share alone; the queries' adds to it): " + "; ".join(parts) + ".")
    smallest = family.get("smallest_marked")
    if smallest:
        need = smallest["seeds_needed"]
        text += (f" The smallest marked difference, {smallest['diff']:+.3f} ({smallest['name']}), would need "
                 + (f"{need} seeds per side" if need else "more than 1,000 seeds per side")
                 + f" for {family['power']:.0%} power.")
    else:
        text += " No difference is marked."
    return text + (" A difference without a mark is not evidence of no effect: at this sample size only differences "
                   "above about the MDD are reliably detected, and smaller ones, of either sign, remain compatible "
                   "with the intervals.")


def interval_columns(comparison: dict, revisited: bool) -> list[str]:
    """The figures shown with an interval column: mAP always, then those some row has an interval for (E and H
    mAP in the revisited protocol, R@1 in the class protocol)."""
    rows = [f for settings in students_of(comparison).values() for f in settings.values()]
    rows += [f for kind in ("teachers", "ensembles") for settings in comparison.get(kind, {}).values()
             for f in settings.values()]
    others = ("E mAP", "H mAP") if revisited else ("R@1",)
    return ["mAP", *[c for c in others if any(c in f.get("intervals", {}) for f in rows)]]


def interval_cells(figures: dict | None, shown: list[str]) -> list[str]:
    """A row's interval cells, one per shown figure ("–" where it has none)."""
    figures = figures or {}
    return [interval_cell(figures if c == "mAP" else figures.get("intervals", {}).get(c)) for c in shown]


def results_table(teachers: dict[str, dict], students: dict[str, dict], training: dict[str, dict],
                  ensembles: dict[str, dict] | None = None, costs: dict[str, dict] | None = None,
                  comparison: dict | None = None) -> str:
    """Markdown table from metrics/eval_teacher, metrics/eval, metrics/train and metrics/eval_ensemble contents,
    with cost columns when `costs` (per teacher and student name: pipeline.report.cost.model_cost) are given,
    and every compared figure's interval, the students' differences and ratios when `comparison`
    (pipeline.report.comparison.compare_students) is.

    Rows: teachers (raw, whitened), ensemble means, the no-distill reference, then every method.
    """
    revisited = protocol_of(teachers, students) == "revisited"
    columns = REVISITED_COLUMNS if revisited else CLASS_COLUMNS
    shown_costs = list(COST_COLUMNS) if costs else []
    comparison = comparison or {}
    shown = interval_columns(comparison, revisited) if comparison else []
    shown_interval = [f"{c} {CONFIDENCE:.0%} interval" for c in shown]
    every = [*teachers.values(), *students.values()]
    shown_validation = ["val mAP"] if any("validation" in r for r in every) else []

    def row(model: str, setting: str, scores: dict, notes: str = "", cost: dict | None = None,
            figures: dict | None = None, validation: dict | None = None) -> str:
        flat = cells(scores)
        if figures and "seeds" in figures:  # a student's row: the mean over seeds (metrics/eval holds it too; the comparison is the one source here)
            flat = {**flat, "mAP": figures["mAP"]} if "M mAP" not in flat else {**flat, "M mAP": figures["mAP"], "mAP": figures["mAP"]}
            flat.update({c: f["value"] for c, f in figures.get("intervals", {}).items()})
        text = " | ".join([f"{flat[c]:.3f}" if c in flat else "–" for c in columns]
                          + interval_cells(figures, shown)
                          + ([f"{validation['mAP']:.3f}" if validation else "–"] if shown_validation else [])
                          + (cost_cells(cost) if costs else []))
        return f"| {model} | {setting} | {text} | {notes} |"

    costs = costs or {}
    header = [*columns, *shown_interval, *shown_validation, *shown_costs]
    lines = [f"| model | setting | {' | '.join(header)} | notes |", "|---|---|" + "---|" * len(header) + "---|"]
    for name, result in sorted(teachers.items()):
        held_out = result.get("validation", {})
        figures = comparison.get("teachers", {}).get(name, {})
        lines.append(row(f"teacher {name}", f"raw ({result['raw']['dim']}-d)", result["raw"], cost=costs.get(name),
                         figures=figures.get("raw"), validation=held_out.get("raw")))
        lines.append(row(f"teacher {name}", f"whitened ({result['whitened']['dim']}-d)", result["whitened"],
                         cost=costs.get(name), figures=figures.get("whitened"), validation=held_out.get("whitened")))
    for name, result in sorted((ensembles or {}).items()):
        mrr = {k: d["view_mrr"] for k, d in result.get("diagnostics", {}).items() if "view_mrr" in d}
        notes = (f"MRR of plain image vs its view: {name} {mrr.pop(name):.3f} ("
                 + ", ".join(f"{k} {v:.3f}" for k, v in mrr.items()) + ")") if name in mrr else ""
        lines.append(row(f"{name} ({' + '.join(result['teachers'])})", "ensemble mean of whitened similarities",
                         result["symmetric"], notes, summed_cost(costs, result["teachers"]),
                         comparison.get("ensembles", {}).get(name, {}).get("symmetric")))
    references = [cells(r["symmetric"])["mAP"] for r in students.values() if r["method"] == "no_distill"]
    alignment = teacher_alignment(ensembles or {})
    for name, result in sorted(students.items(), key=lambda kv: (kv[1]["method"] != "no_distill", kv[0])):
        seconds = training.get(name, {}).get("seconds_per_epoch")
        notes = [f"{seconds:.1f} s/epoch"] if seconds is not None else []
        figures = comparison.get(name, {})
        twin = figures.get("symmetric", {}).get("vs_cached", {}).get("a")
        if twin and seconds is not None and training.get(twin, {}).get("seconds_per_epoch"):
            notes[0] = (f"online: {seconds:.1f} s/epoch, {seconds / training[twin]['seconds_per_epoch']:.1f}× "
                        f"{twin}'s")
        if "vs_cached" in figures.get("symmetric", {}):
            notes.append(cached_note(figures["symmetric"]["vs_cached"]))
        elif "vs_no_distill" in figures.get("symmetric", {}):
            notes.append(difference_note("no_distill", figures["symmetric"]["vs_no_distill"]))
        elif references and result["method"] != "no_distill":
            notes.append(f"{cells(result['symmetric'])['mAP'] - references[0]:+.3f} mAP vs no_distill")
        sources = result.get("teachers", [result["teacher"]])
        if len(sources) > 1 and alignment:
            notes.append(alignment)
        model = f"{name} ({result['arch']}, {result['method']}" + (f" from {' + '.join(sources)})" if len(sources) > 1 else ")")
        lines.append(row(model, "symmetric", result["symmetric"], "; ".join(notes), costs.get(name),
                         figures.get("symmetric"), result.get("validation", {}).get("symmetric")))
        if "asymmetric" in result:
            teacher = teachers.get(result["teacher"], {}).get("whitened")
            asymmetric = figures.get("asymmetric", {})
            if "ratio" in asymmetric:
                ratio = ratio_note(asymmetric["ratio"])
            else:
                ratio = (f"{asymmetric.get('mAP', cells(result['asymmetric'])['mAP']) / cells(teacher)['mAP']:.2f} × "
                         "whitened teacher mAP" if teacher and cells(teacher)["mAP"] else "")
            if "vs_teacher" in asymmetric:
                ratio += f"; {difference_note('whitened teacher', asymmetric['vs_teacher'])}"
            if "vs_cached" in asymmetric:
                ratio += f"; {cached_note(asymmetric['vs_cached'])}"
            lines.append(row(model, f"asymmetric (→ {result['teacher']} gallery)", result["asymmetric"], ratio,
                             costs.get(name), asymmetric or None, result.get("validation", {}).get("asymmetric")))
    return "\n".join(lines) + "\n"
