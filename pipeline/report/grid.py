"""The retrieval grid: a few queries, each followed by its top results, correct ones framed green."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from pipeline.data.decode import load_rgb
from pipeline.data.listfile import BBox

QUERY, CORRECT, WRONG, UNJUDGED = (40, 90, 220), (30, 170, 60), (210, 40, 40), (150, 150, 150)


def tile(path: Path, size: int, frame: tuple[int, int, int], bbox: BBox | None = None, border: int = 3) -> Image.Image:
    """An image fitted into a size×size tile with a coloured frame."""
    image = load_rgb(path)
    if bbox is not None:
        image = image.crop(tuple(round(v) for v in bbox))
    inner = ImageOps.pad(image, (size - 2 * border, size - 2 * border), color=(255, 255, 255))
    canvas = Image.new("RGB", (size, size), frame)
    canvas.paste(inner, (border, border))
    return canvas


def retrieval_grid(queries: Sequence[tuple[Path, BBox | None]], results: Sequence[Sequence[Path]],
                   correct: Sequence[Sequence[bool | None]], size: int = 72, gap: int = 4) -> Image.Image:
    """One row per query: the query (blue frame), then its ranked results (green correct, red wrong, grey
    where no ground truth says)."""
    columns = 1 + max(len(r) for r in results)
    grid = Image.new("RGB", (columns * (size + gap) + gap, len(queries) * (size + gap) + gap), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for i, ((query, bbox), ranked, hits) in enumerate(zip(queries, results, correct, strict=True)):
        y = gap + i * (size + gap)
        grid.paste(tile(query, size, QUERY, bbox), (gap, y))
        for j, (path, hit) in enumerate(zip(ranked, hits, strict=True)):
            frame = UNJUDGED if hit is None else CORRECT if hit else WRONG
            grid.paste(tile(path, size, frame), (gap + (j + 1) * (size + gap), y))
        draw.line([(size + gap * 1.5, y), (size + gap * 1.5, y + size)], fill=(0, 0, 0), width=1)
    return grid
