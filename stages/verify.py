"""Stage `verify`: recompute a seeded sample of a teacher's cached features on this machine and compare.

The sample (drawn with `seed`) mixes plain images and augmented views, each view recreated from the
seed the cache records, as extraction made it and as training shows it to the student; the verdict is the lowest cosine between a cached and a live feature (verify.min_cosine).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import layout
from pipeline.data.views import item_loader
from pipeline.features.extract import describe
from pipeline.features.verify import agreement, sample_items
from pipeline.io import sha256_file, write_json
from pipeline.models.weights import load_network
from pipeline.params import load_params
from pipeline.provenance import environment, open_checked_features
from pipeline.report.verify import environment_changes, environment_line, verify_summary
from pipeline.runtime import describe_device, device
from stages.common import declared, prepared_list


def item_label(ids, n_rows: int, item: int) -> str:
    """An item named by its image id, row and view."""
    row, view = item % n_rows, item // n_rows
    return f"{ids[row]} (row {row}" + (f", view {view})" if view else ")")


def verify_imported(name: str, source: str, list_sha: str) -> tuple[str, str | None]:
    """Imported features cannot be recomputed here: check that the source still is the file imported; on a
    machine without the source (a teammate who pulled the cache), check the cache's own rows instead."""
    with open_checked_features(layout.raw_features(name), list_sha, name) as cached_rows:
        imported_sha = cached_rows.attrs.get("source_sha256")
        cached_env = cached_rows.attrs.get("environment")
        if not Path(source).is_file():  # every block is checked for NaN, inf and all-zero rows as it is read
            checked = sum(len(block) for _, block in cached_rows.blocks())
    if not Path(source).is_file():
        write_json(layout.metrics("verify", name), {"teacher": name, "imported": source, "passed": True,
                                                    "source_present": False, "rows_checked": checked,
                                                    "source_sha256": imported_sha, "cached_environment": cached_env})
        return (f"verify {name}: {source} is not on this machine, so the imported features cannot be compared with "
                f"it here; the cache's {checked} rows are complete and finite"), None
    current = sha256_file(source)
    metrics = {"teacher": name, "imported": source, "passed": current == imported_sha,
               "source_sha256": imported_sha, "cached_environment": cached_env}
    write_json(layout.metrics("verify", name), metrics)
    text = (f"verify {name}: features imported from {source} (computed with: {environment_line(cached_env)}); "
            f"nothing to recompute here; the source " + ("is unchanged" if metrics["passed"] else "changed"))
    failure = None if metrics["passed"] else (f"teacher {name}: {source} is not the file imported (sha256 "
                                              f"{str(imported_sha)[:12]}…, now {current[:12]}…); rerun extract@{name}")
    return text, failure


def verify(name: str, params_path: Path, sample: int | None = None) -> tuple[str, str | None]:
    """Write metrics/verify/<name>.json; return the summary and, when the cache does not hold, the failure line."""
    params = load_params(params_path)
    spec, p, check = declared(params.teachers, "teachers", name, params_path), params.extract, params.verify
    image_list, list_sha = prepared_list(params)
    if spec.features:
        return verify_imported(name, spec.features, list_sha)
    n_rows, weights = len(image_list), layout.teacher_weights(name)
    with open_checked_features(layout.raw_features(name), list_sha, name) as cached_rows:
        view_rows = cached_rows.view_rows()
        view_rows = np.zeros(0, dtype=np.int64) if view_rows is None else view_rows
        items = sample_items(n_rows, view_rows, cached_rows.n_views, sample or check.sample, params.seed)
        cached, attrs = cached_rows.read_items(items), cached_rows.attrs
    here = {"arch": spec.arch, "weights_sha256": sha256_file(weights), "scales": p.scales, "image_size": spec.image_size}
    differs = {key: {"cached": attrs.get(key), "here": value} for key, value in here.items() if attrs.get(key) != value}

    net = load_network(weights, spec.arch, spec.dim, spec.pool)
    # Views are recreated from the seed the cache records, as training recreates them for the student.
    loader = item_loader(image_list, items, spec.image_size, attrs.get("seed", params.seed), p.batch_size, params.runtime.workers)
    live = np.empty_like(cached)
    for batch_items, feats in describe(net, loader, p.scales, len(items), device(), desc=f"verify {name}"):
        live[np.searchsorted(items, batch_items)] = feats

    result = agreement(cached, live, [item_label(image_list.ids, n_rows, i) for i in items], check.worst)
    live_env = environment(describe_device(device()))
    metrics = {"teacher": name, "items": len(items), "views": int((items >= n_rows).sum()),
               "min_cosine_allowed": check.min_cosine, "passed": result["min_cosine"] >= check.min_cosine, **result,
               "provenance_differs": differs, "cached_environment": attrs.get("environment"),
               "live_environment": live_env, "environment_differs": environment_changes(attrs.get("environment"), live_env)}
    write_json(layout.metrics("verify", name), metrics)
    if metrics["passed"]:
        return verify_summary(metrics), None
    worst = result["worst"][0]
    hint = f"; the cache was made with another {', '.join(differs)}" if differs else ""
    return verify_summary(metrics), (f"teacher {name}: cached feature of {worst['item']} has cosine {worst['cosine']:.4f} "
                                     f"with this machine's, below verify.min_cosine {check.min_cosine}{hint}")
