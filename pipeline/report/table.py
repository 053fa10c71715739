"""The results table: teachers, distilled students (symmetric and asymmetric) and references."""
from __future__ import annotations

COLUMNS = ("mAP", "R@1", "R@5", "R@10")


def _row(model: str, setting: str, scores: dict, extra: str = "") -> str:
    cells = " | ".join(f"{scores[c]:.3f}" if c in scores else "–" for c in COLUMNS)
    return f"| {model} | {setting} | {cells} | {extra} |"


def results_table(teachers: dict[str, dict], students: dict[str, dict], training: dict[str, dict]) -> str:
    """Markdown table from metrics/eval_teacher, metrics/eval and metrics/train JSON contents, keyed by name."""
    lines = [f"| model | setting | {' | '.join(COLUMNS)} | notes |", "|---|---|" + "---|" * len(COLUMNS) + "---|"]
    for name, result in sorted(teachers.items()):
        lines.append(_row(f"teacher {name}", f"raw ({result['raw']['dim']}-d)", result["raw"]))
        lines.append(_row(f"teacher {name}", f"whitened ({result['whitened']['dim']}-d)", result["whitened"]))
    references = [r["symmetric"]["mAP"] for r in students.values() if r["method"] == "no_distill"]
    for name, result in sorted(students.items(), key=lambda kv: (kv[1]["method"] == "no_distill", kv[0])):
        seconds = training.get(name, {}).get("seconds_per_epoch")
        notes = [f"{seconds:.1f} s/epoch"] if seconds is not None else []
        if references and result["method"] != "no_distill":
            notes.append(f"{result['symmetric']['mAP'] - references[0]:+.3f} mAP vs no_distill")
        model = f"{name} ({result['arch']}, {result['method']})"
        lines.append(_row(model, "symmetric", result["symmetric"], "; ".join(notes)))
        if "asymmetric" in result:
            teacher = teachers.get(result["teacher"], {}).get("whitened", {})
            ratio = (f"{result['asymmetric']['mAP'] / teacher['mAP']:.2f} × whitened teacher mAP"
                     if teacher.get("mAP") else "")
            lines.append(_row(model, f"asymmetric (→ {result['teacher']} gallery)", result["asymmetric"], ratio))
    return "\n".join(lines) + "\n"
