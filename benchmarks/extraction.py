"""Extraction throughput of the `extract` stage vs the pure forward pass of the same model on the same batches.

The stage decodes JPEGs in DataLoader workers, describes each batch at three scales (METHODS §1) and
writes HDF5 chunks; the reference runs only multiscale_descriptor on batches already in memory.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch
import typer
import yaml

from benchmarks.common import write_result
from benchmarks.images import write_images


def main(images: int = 192, arch: str = "resnet50", image_size: int = 160, batch: int = 32, workers: int = 1) -> None:
    """Write benchmarks/results/extraction.json."""
    from pipeline.data.dataset import eval_transform, make_loader, ImageListDataset
    from pipeline.data.listfile import read_list
    from pipeline.features.extract import multiscale_descriptor
    from pipeline.models.registry import create
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
            Path("params.yaml").write_text(yaml.safe_dump({
                "teachers": {"t": {"arch": arch, "weights": "train", "image_size": image_size}},
                "extract": {"scales": scales, "batch_size": batch, "chunk_size": batch * 4, "workers": workers}}))
            image_list = read_list(listed)
            dataset = ImageListDataset(image_list.paths, image_list.labels, image_list.train_rows(),
                                       eval_transform(image_size))
            batches = [images for groups in make_loader(dataset, batch, 0, by_shape=True) for images, _, _ in groups]
            with torch.no_grad():
                multiscale_descriptor(net, batches[0], scales)  # warm-up
                start = time.perf_counter()
                for images_batch in batches:
                    multiscale_descriptor(net, images_batch, scales)
                forward = time.perf_counter() - start
            start = time.perf_counter()
            extract("t", Path("params.yaml"))
            stage = time.perf_counter() - start
        finally:
            os.chdir(cwd)
    figures = {"forward_images_per_s": images / forward, "stage_images_per_s": images / stage,
               "ratio": forward / stage}
    write_result("extraction", {"images": images, "arch": arch, "image_size": image_size, "batch": batch,
                                "workers": workers, "scales": scales, "jpeg": "400x300"},
                 figures, {"stage >= 0.9 x pure forward": figures["ratio"] >= 0.9})


if __name__ == "__main__":
    typer.run(main)
