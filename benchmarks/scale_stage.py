"""One stage of the scale benchmark in its own process (run in a generated project): prints seconds and peak RSS."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import typer

PARAMS = Path("params.yaml")


def peak_rss_gib() -> float:
    """Peak resident memory of this process (VmHWM: ru_maxrss would carry the parent's peak across exec)."""
    from benchmarks.common import peak_rss_mb
    return peak_rss_mb() / 1024


def resident_split_gib() -> dict:
    """Resident memory now, split into anonymous (the process's own) and file-backed pages (memory-mapped
    files, shared with other processes and dropped by the kernel under pressure)."""
    status = Path("/proc/self/status").read_text().splitlines()
    value = {line.split(":")[0]: int(line.split()[1]) / 2**20 for line in status if line.startswith(("RssAnon", "RssFile"))}
    return {"rss_anon_gib_at_end": value.get("RssAnon", 0.0), "rss_file_gib_at_end": value.get("RssFile", 0.0)}


def train_targets(batch: int = 512, reference_rows: int = 400_000) -> dict:
    """The train stage's target file built from the whitened cache, then one epoch of batch gathers.

    The reference, measured first and freed before the targets are built (so that it is not in their
    peak memory): the same gathers from an array already in memory, up to `reference_rows` rows.
    """
    import torch

    from pipeline import layout
    from pipeline.data.views import OneViewPerImage, every_view
    from pipeline.train.objectives import gather_rows
    from stages.common import prepared_list
    from pipeline.train.targets import load_targets
    image_list, list_sha = prepared_list()
    rows = image_list.train_rows()
    n_views = 2
    n_items = len(rows)  # one view of every image per epoch
    sample = min(n_items, reference_rows)
    memory = np.random.default_rng(0).standard_normal((sample, 512), dtype=np.float32)
    perm = np.random.default_rng(1).permutation(sample)
    start = time.perf_counter()
    for i in range(0, sample, batch):
        memory[perm[i:i + batch]]  # fancy indexing returns a fresh copy
    numpy_epoch = (time.perf_counter() - start) * n_items / sample
    del memory
    path = layout.scratch("train", "bench") / "targets.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    targets, attrs = load_targets(["t"], list_sha, len(image_list), 0, path)
    build = time.perf_counter() - start
    dim = targets.dim
    key_rows, key_views = every_view(rows, attrs.get("views", n_views))
    order = list(OneViewPerImage(len(rows), attrs.get("views", n_views), torch.Generator().manual_seed(0)))
    start = time.perf_counter()
    for i in range(0, len(order), batch):
        keys = np.asarray(order[i:i + batch])
        items = torch.from_numpy(key_views[keys] * len(image_list) + key_rows[keys])
        gather_rows(targets.teacher, items)  # as the objectives gather a batch's targets
    epoch = time.perf_counter() - start
    mapped = resident_split_gib()  # the target file's pages the epoch touched
    del targets
    path.unlink()
    return {"build_seconds": build, "epoch_seconds": epoch, "numpy_copy_epoch_seconds": numpy_epoch,
            "ratio_epoch_to_numpy_copy": numpy_epoch / epoch,
            "ratio_first_epoch_with_build": numpy_epoch / (build + epoch),
            "ratio_over_8_epochs_with_build": 8 * numpy_epoch / (build + 8 * epoch), "items": len(order),
            "target_file_gib": (len(image_list) * attrs.get("views", 1) * dim * 4) / 2**30,
            "after_epoch": mapped}


def evaluate(gallery_path: str, queries: int = 70, seed: int = 0) -> dict:
    """Revisited-style scoring of `queries` noisy gallery images against the whole gallery file."""
    from pipeline.data.rows import FeatureRows
    from pipeline.evaluate.ranks import positive_ranks
    from pipeline.evaluate.revisited import SETTINGS, QueryTruth, revisited_scores_from_ranks
    rng = np.random.default_rng(seed)
    with FeatureRows(gallery_path) as gallery:
        clusters = rng.choice(len(gallery) // 16, queries, replace=False)
        members = clusters[:, None] * 16 + np.arange(16)
        q = gallery.gather(members[:, 0]) + 0.02 * rng.standard_normal((queries, gallery.dim), dtype=np.float32)
        truths = [QueryTruth(m[:8], m[8:14], m[14:]) for m in members]
        ranks = positive_ranks(q, gallery, [[t.split(s) for s in SETTINGS] for t in truths])
        result = revisited_scores_from_ranks(ranks, truths)
    return {"mAP_medium": result["medium"]["mAP"], "queries": queries}


def main(stage: str, gallery: str = "") -> None:
    """Run `stage` (whiten, mine, train_targets, evaluate_teacher, evaluate_em, evaluate) and print JSON."""
    start = time.perf_counter()
    extra: dict = {}
    if stage == "whiten":
        from stages.whiten import whiten
        whiten("t", PARAMS)
    elif stage == "mine":
        import stages.mine as mine_stage
        mine_stage.RECALL_SAMPLE = 2000
        mine_stage.mine("t", PARAMS)
        extra = {k: v for k, v in json.loads(Path("metrics/mine/t.json").read_text()).items()
                 if k in ("recall_at_k", "recall_at_k_index", "index", "nprobe", "refine", "recall_sample", "shortlist")}
    elif stage == "train_targets":
        extra = train_targets()
    elif stage == "evaluate_teacher":
        from stages.evaluate_teachers import evaluate_teacher
        evaluate_teacher("t", PARAMS)
    elif stage == "evaluate_em":
        from stages.evaluate_teachers import evaluate_ensemble
        evaluate_ensemble(PARAMS)
    elif stage == "evaluate":
        extra = evaluate(gallery)
    else:
        raise typer.BadParameter(f"unknown stage {stage!r}")
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_gib": peak_rss_gib(), **resident_split_gib(),
                      **extra}))


if __name__ == "__main__":
    typer.run(main)
