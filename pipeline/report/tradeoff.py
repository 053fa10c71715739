"""The picture distillation papers show: mAP against the cost of describing an image, every model at once."""
from __future__ import annotations

from pathlib import Path

from pipeline.report.table import cells

MARKERS = {"teacher": "s", "ensemble": "D", "symmetric": "o", "asymmetric": "^"}


def tradeoff_points(teachers: dict[str, dict], students: dict[str, dict], ensembles: dict[str, dict],
                    costs: dict[str, dict]) -> list[tuple[str, str, float, float]]:
    """(label, kind, GFLOPs per image, mAP) of every model with a known cost: whitened teachers, ensemble
    means (their teachers' costs summed), students symmetric and asymmetric (the student's query cost)."""
    points = [(f"teacher {t}", "teacher", costs[t]["gflops"], cells(r["whitened"])["mAP"])
              for t, r in sorted(teachers.items()) if t in costs]
    for name, result in sorted(ensembles.items()):
        if all(t in costs for t in result["teachers"]):
            points.append((f"{name} ({' + '.join(result['teachers'])})", "ensemble",
                           sum(costs[t]["gflops"] for t in result["teachers"]), cells(result["symmetric"])["mAP"]))
    for name, result in sorted(students.items()):
        if name in costs:
            points += [(name, setting, costs[name]["gflops"], cells(result[setting])["mAP"])
                       for setting in ("symmetric", "asymmetric") if setting in result]
    return points


def tradeoff_plot(points: list[tuple[str, str, float, float]], path: Path) -> None:
    """Write the mAP / GFLOPs scatter (log x), one marker per kind, each point named."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axes = plt.subplots(figsize=(8, 5.5), dpi=100)
    for kind, marker in MARKERS.items():
        chosen = [p for p in points if p[1] == kind]
        if chosen:
            axes.scatter([p[2] for p in chosen], [p[3] for p in chosen], marker=marker, s=45, label=kind)
    for label, kind, x, y in points:
        axes.annotate(label if kind != "asymmetric" else f"{label} (asym)", (x, y), fontsize=7,
                      xytext=(4, 3), textcoords="offset points")
    axes.set_xscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
    axes.xaxis.set_major_formatter(plain)
    axes.xaxis.set_minor_formatter(plain)
    axes.set_xlabel("GFLOPs per image (every scale)")
    axes.set_ylabel("mAP")
    axes.set_title("mAP against the cost of describing an image")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png", metadata={"Software": None})
    plt.close(figure)
