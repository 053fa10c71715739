"""Extraction throughput of the `extract` stage vs the pure forward pass of the same model on the same batches.

The stage decodes JPEGs (in the main process and with DataLoader workers: each count timed), describes each
batch at three scales (METHODS §1) and writes HDF5 chunks; the reference runs only the description (network
at every scale, on the stage's device, mixed precision on CUDA as the stage does) of batches already in
host memory, timed before and after the stage runs.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
import typer
import yaml

from benchmarks.common import timed, write_result
from benchmarks.images import write_images


def main(images: int = 384, arch: str = "resnet50", image_size: int = 160, batch: int = 32,
         workers: list[int] = typer.Option([0, 1], help="DataLoader workers to time the stage with (each)."),
         name: str = typer.Option("extraction", help="results file: benchmarks/results/<name>.json")) -> dict:
    """Write benchmarks/results/<name>.json and return its figures; the verdict uses the fastest worker count
    (runtime.workers). The stage and the reference run on the stage's device (CUDA when torch sees it)."""
    from pipeline.data.dataset import eval_transform, make_loader, ImageListDataset
    from pipeline.data.listfile import read_list
    from pipeline.features.extract import describe
    from pipeline.models.backbones import create
    from pipeline.runtime import device
    from stages.extract import extract
    scales = [1.0, 0.7071, 0.5]
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            listed = write_images(Path(tmp) / "data/prepared", images)
            torch.manual_seed(0)
            net = create(arch, None).eval()
            Path("data/teachers").mkdir(parents=True)
            torch.save(net.state_dict(), "data/teachers/t.pt")
            image_list = read_list(listed)
            dataset = ImageListDataset(image_list.paths, image_list.labels, image_list.train_rows(),
                                       eval_transform(image_size))
            batches = [groups for groups in make_loader(dataset, batch, 0, by_shape=True)]

            def forward_all() -> None:
                for _ in describe(net, batches, scales, images, device(), desc="forward"):
                    pass

            for _ in describe(net, batches[:2], scales, 2 * batch, device(), desc="warm-up"):
                pass
            forward_runs = [timed(forward_all)]
            stage_by_workers = {}
            for n_workers in workers:
                Path("params.yaml").write_text(yaml.safe_dump({
                    "teachers": {"t": {"arch": arch, "weights": "train", "image_size": image_size}},
                    "extract": {"scales": scales, "batch_size": batch, "chunk_size": batch * 4},
                    "runtime": {"workers": n_workers}}))
                shutil.rmtree("data/features", ignore_errors=True)
                shutil.rmtree("data/.partial", ignore_errors=True)  # a fresh extraction each time
                stage_by_workers[n_workers] = timed(extract, "t", Path("params.yaml"))
            forward_runs.append(timed(forward_all))  # before and after the stage: this machine's speed drifts
            forward = float(np.mean(forward_runs))
        finally:
            os.chdir(cwd)
    best_workers = min(stage_by_workers, key=stage_by_workers.get)
    stage = stage_by_workers[best_workers]
    figures = {"forward_images_per_s": images / forward, "forward_runs_s": forward_runs,
               "stage_images_per_s": images / stage,
               "stage_images_per_s_by_workers": {w: images / t for w, t in stage_by_workers.items()},
               "fastest_workers": best_workers, "ratio": forward / stage}
    write_result(name, {"images": images, "arch": arch, "image_size": image_size, "batch": batch,
                        "workers": workers, "scales": scales, "jpeg": "400x300", "device": str(device())},
                 figures, {"stage >= 0.9 x pure forward": figures["ratio"] >= 0.9})
    return figures


if __name__ == "__main__":
    typer.run(main)
