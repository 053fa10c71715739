"""prepare's image check with a process pool vs one process, on generated JPEGs of a few sizes, and
the list file written and read back at GLDv2 size (1.6M rows)."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import typer
from PIL import Image

from benchmarks.common import write_result

SIZES = ((400, 300), (640, 480), (1024, 768), (300, 400))


def make_jpegs(folder: Path, n: int) -> list[Path]:
    """n JPEGs of SIZES in turn, smooth random content (a noise image upscaled), quality 90."""
    rng = np.random.default_rng(0)
    tiles = [Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize(size, Image.BILINEAR)
             for size in SIZES for _ in range(4)]
    paths = []
    for i in range(n):
        path = folder / f"{i:06d}.jpg"
        tiles[i % len(tiles)].save(path, quality=90 - i % 7)  # varied bytes, the same decoding work
        paths.append(path)
    return paths


def main(images: int = 20_000, list_rows: int = 1_600_000) -> None:
    """Write benchmarks/results/prepare.json."""
    from pipeline.data.checks import check_images
    from pipeline.data.listfile import read_list, write_list
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(tmp), images)
        seconds = {}
        for workers in (1, os.cpu_count() or 1):
            start = time.perf_counter()
            bad, _ = check_images(paths, workers=workers)
            seconds[workers] = time.perf_counter() - start
            assert not bad
        one, pool = seconds[1], seconds[max(seconds)]
        n = list_rows
        start = time.perf_counter()
        write_list(Path(tmp) / "list.csv", [f"train/{i % 16:x}/{i % 7:x}/{i:016x}.jpg" for i in range(n)],
                   list(range(n)), ["train"] * n, digests=["0" * 32] * n)
        written = time.perf_counter() - start
        start = time.perf_counter()
        listed = read_list(Path(tmp) / "list.csv")
        read = time.perf_counter() - start
        assert len(listed) == n
    figures = {"images_per_s_one_process": images / one, "images_per_s_pool": images / pool,
               "pool_speedup": one / pool, "pool_workers": max(seconds),
               "list_write_s": written, "list_read_s": read, "list_rows": n}
    write_result("prepare", {"images": images, "sizes": SIZES, "list_rows": n}, figures,
                 {"pool_speedup >= 1.7": figures["pool_speedup"] >= 1.7})


if __name__ == "__main__":
    typer.run(main)
