"""Synthetic photographs for the speed benchmarks: JPEG files of a realistic size, and their image list."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.data.listfile import write_list


def write_images(folder: Path, n: int, size: tuple[int, int] = (400, 300), seed: int = 0) -> Path:
    """n JPEGs of smooth random colour fields under folder/images, listed (all `train`) in folder/list.csv."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        small = rng.integers(0, 256, size=(size[1] // 20, size[0] // 20, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize(size, Image.BICUBIC)
        names.append(f"images/{i:05d}.jpg")
        image.save(folder / names[-1], quality=90)
    listed = folder / "list.csv"
    write_list(listed, names, [i % 10 for i in range(n)], ["train"] * n)
    return listed
