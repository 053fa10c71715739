"""The picture distillation papers show: mAP against the cost of describing an image, every model at once,
beside the students' mAP with their 95% intervals (students of one architecture share a cost, so their
points stack at one x; the second panel tells them apart)."""
from __future__ import annotations

from collections import defaultdict
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


def point_labels(points: list[tuple[str, str, float, float]]) -> list[tuple[str, float, float]]:
    """One label per x position shared by students ("9 students" at their cost, placed at their best mAP),
    every teacher and ensemble named at its own point: labels never stack at one x."""
    labels = [(label, x, y) for label, kind, x, y in points if kind in ("teacher", "ensemble")]
    by_cost: dict[float, list[tuple[str, float]]] = defaultdict(list)
    for label, kind, x, y in points:
        if kind in ("symmetric", "asymmetric"):
            by_cost[x].append((label, y))
    for x, members in sorted(by_cost.items()):
        names = sorted({label for label, _ in members})
        text = names[0] if len(names) == 1 else f"{len(names)} students (right)"
        labels.append((text, x, max(y for _, y in members)))
    return labels


def tradeoff_plot(points: list[tuple[str, str, float, float]], path: Path,
                  intervals: dict[str, dict] | None = None) -> None:
    """Write the mAP / GFLOPs scatter (log x, one marker per kind) and, with `intervals`
    (pipeline.report.comparison), a second panel of every student's mAP with its 95% interval."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = sorted(((f"{name} ({'sym' if setting == 'symmetric' else 'asym'})", setting, f["mAP"], f["low"], f["high"])
                   for name, settings in (intervals or {}).items() for setting, f in settings.items()),
                  key=lambda r: r[2])
    panels = 2 if rows else 1
    figure, axes = plt.subplots(1, panels, figsize=(8 + 5 * (panels - 1), max(5.5, 0.28 * len(rows) + 1.5)), dpi=100,
                                gridspec_kw={"width_ratios": [8, 5][:panels]}, squeeze=False)
    left = axes[0][0]
    for kind, marker in MARKERS.items():
        chosen = [p for p in points if p[1] == kind]
        if chosen:
            left.scatter([p[2] for p in chosen], [p[3] for p in chosen], marker=marker, s=45, label=kind, alpha=0.8)
    for label, x, y in point_labels(points):
        left.annotate(label, (x, y), fontsize=8, xytext=(5, 4), textcoords="offset points")
    left.set_xscale("log")
    left.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))  # 0.02, 0.05, 0.1, 0.2 …
    left.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    left.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor ticks unlabelled: no overprinting
    left.set_xlabel("GFLOPs per image (every scale)")
    left.set_ylabel("mAP")
    left.set_title("mAP against the cost of describing an image")
    left.grid(alpha=0.3, which="both")
    left.legend(loc="lower right", fontsize=8)
    if rows:
        right = axes[0][1]
        for i, (label, setting, mean, low, high) in enumerate(rows):
            has_interval = low == low and high == high  # not NaN
            right.errorbar(mean, i, xerr=[[mean - low], [high - mean]] if has_interval else None,
                           fmt=MARKERS[setting], color="C2" if setting == "symmetric" else "C3", capsize=3, ms=5)
        right.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
        right.set_xlabel("mAP (mean over seeds, 95% interval)")
        right.set_title("students")
        right.grid(alpha=0.3, axis="x")
    figure.tight_layout()
    figure.savefig(path, format="png", metadata={"Software": None})
    plt.close(figure)
