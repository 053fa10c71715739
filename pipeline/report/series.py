"""Every student in one chart: the per-student loss and precision–recall files joined into one file per
chart, each row tagged with its series (the student; for asymmetric curves, the student → its gallery),
for dvc.yaml's top-level plots (template plots/templates/series.json colours by `series`)."""
from __future__ import annotations


def loss_series(losses: dict[str, dict]) -> dict:
    """plots/loss/<S>.json contents by student -> {"loss": [{series, epoch, loss}, …]}."""
    return {"loss": [{"series": name, "epoch": r["epoch"], "loss": r["loss"]}
                     for name, payload in sorted(losses.items()) for r in payload["loss"]]}


def pr_series(curves: dict[str, dict], galleries: dict[str, str]) -> dict[str, dict]:
    """plots/pr/<S>.json contents by student -> one chart's rows per setting: {"symmetric": {"pr": […]},
    "asymmetric": {"pr": […]}}, asymmetric series named "<student> → <gallery teacher>"."""
    out: dict[str, list] = {"symmetric": [], "asymmetric": []}
    for name, payload in sorted(curves.items()):
        for r in payload["pr"]:
            setting = r["setting"] if r["setting"] in out else None
            if setting is None:
                continue
            series = name if setting == "symmetric" else f"{name} → {galleries.get(name, '?')}"
            out[setting].append({"series": series, "recall": r["recall"], "precision": r["precision"]})
    return {setting: {"pr": rows} for setting, rows in out.items()}
