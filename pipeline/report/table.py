"""The results table: teachers, distilled students (symmetric and asymmetric) and references."""
from __future__ import annotations

from pipeline.report.comparison import difference_note, interval_cell

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


def intervals_note(comparison: dict[str, dict], resamples: int) -> str:
    """What the table's intervals and marks mean, under it."""
    figures = [f for settings in comparison.values() for f in settings.values()]
    if not figures:
        return ""
    seeds = sorted({f["seeds"] for f in figures})
    over = ("one seed per student: a row's interval comes from resampling the queries alone, not from retraining"
            if seeds == [1] else f"{'/'.join(map(str, seeds))} seeds per student: a row's interval is a Student-t "
                                 f"interval over the seeds' mAP")
    return (f"\nStudents' mAP is the mean over training seeds with a 95% interval ({over}). Differences are "
            f"paired bootstraps over the queries ({resamples:,} seeded resamples; per query, the AP averaged over "
            "seeds), widened by Welch's interval over the seeds' mAP (a seed moves every query together): "
            "against no_distill for symmetric rows, against the whitened teacher for asymmetric rows; "
            "`*` marks a difference whose 95% interval excludes 0. The teachers are trained once, so every "
            "interval is conditional on them.\n")


def results_table(teachers: dict[str, dict], students: dict[str, dict], training: dict[str, dict],
                  ensembles: dict[str, dict] | None = None, costs: dict[str, dict] | None = None,
                  comparison: dict[str, dict] | None = None) -> str:
    """Markdown table from metrics/eval_teacher, metrics/eval, metrics/train and metrics/eval_ensemble contents,
    with cost columns when `costs` (per teacher and student name: pipeline.report.cost.model_cost) are given,
    and students' intervals and paired differences when `comparison` (pipeline.report.comparison) is.

    Rows: teachers (raw, whitened), ensemble means, the no-distill reference, then every method.
    """
    columns = REVISITED_COLUMNS if protocol_of(teachers, students) == "revisited" else CLASS_COLUMNS
    shown_costs = list(COST_COLUMNS) if costs else []
    comparison = comparison or {}
    shown_interval = ["mAP 95% interval"] if comparison else []
    every = [*teachers.values(), *students.values()]
    shown_validation = ["val mAP"] if any("validation" in r for r in every) else []

    def row(model: str, setting: str, scores: dict, notes: str = "", cost: dict | None = None,
            figures: dict | None = None, validation: dict | None = None) -> str:
        flat = cells(scores)
        if figures:  # the mean over seeds (metrics/eval holds it too; the comparison is the one source here)
            flat = {**flat, "mAP": figures["mAP"]} if "M mAP" not in flat else {**flat, "M mAP": figures["mAP"], "mAP": figures["mAP"]}
        text = " | ".join([f"{flat[c]:.3f}" if c in flat else "–" for c in columns]
                          + ([interval_cell(figures) if figures else "–"] if comparison else [])
                          + ([f"{validation['mAP']:.3f}" if validation else "–"] if shown_validation else [])
                          + (cost_cells(cost) if costs else []))
        return f"| {model} | {setting} | {text} | {notes} |"

    costs = costs or {}
    header = [*columns, *shown_interval, *shown_validation, *shown_costs]
    lines = [f"| model | setting | {' | '.join(header)} | notes |", "|---|---|" + "---|" * len(header) + "---|"]
    for name, result in sorted(teachers.items()):
        held_out = result.get("validation", {})
        lines.append(row(f"teacher {name}", f"raw ({result['raw']['dim']}-d)", result["raw"], cost=costs.get(name),
                         validation=held_out.get("raw")))
        lines.append(row(f"teacher {name}", f"whitened ({result['whitened']['dim']}-d)", result["whitened"],
                         cost=costs.get(name), validation=held_out.get("whitened")))
    for name, result in sorted((ensembles or {}).items()):
        mrr = {k: d["view_mrr"] for k, d in result.get("diagnostics", {}).items() if "view_mrr" in d}
        notes = (f"MRR of plain image vs its view: {name} {mrr.pop(name):.3f} ("
                 + ", ".join(f"{k} {v:.3f}" for k, v in mrr.items()) + ")") if name in mrr else ""
        lines.append(row(f"{name} ({' + '.join(result['teachers'])})", "ensemble mean of whitened similarities",
                         result["symmetric"], notes, summed_cost(costs, result["teachers"])))
    references = [cells(r["symmetric"])["mAP"] for r in students.values() if r["method"] == "no_distill"]
    alignment = teacher_alignment(ensembles or {})
    for name, result in sorted(students.items(), key=lambda kv: (kv[1]["method"] != "no_distill", kv[0])):
        seconds = training.get(name, {}).get("seconds_per_epoch")
        notes = [f"{seconds:.1f} s/epoch"] if seconds is not None else []
        figures = comparison.get(name, {})
        if "vs_no_distill" in figures.get("symmetric", {}):
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
            ratio = (f"{asymmetric.get('mAP', cells(result['asymmetric'])['mAP']) / cells(teacher)['mAP']:.2f} × "
                     "whitened teacher mAP" if teacher and cells(teacher)["mAP"] else "")
            if "vs_teacher" in asymmetric:
                ratio += f"; {difference_note('whitened teacher', asymmetric['vs_teacher'])}"
            lines.append(row(model, f"asymmetric (→ {result['teacher']} gallery)", result["asymmetric"], ratio,
                             costs.get(name), asymmetric or None, result.get("validation", {}).get("asymmetric")))
    return "\n".join(lines) + "\n"
