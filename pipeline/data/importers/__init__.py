"""Dataset importers: each turns a benchmark's own files into the pipeline's list format."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.data.listfile import BBox


@dataclass
class Imported:
    """Rows for the image list (absolute image paths) and, for the revisited protocol, ground truth by row."""

    paths: list[Path]
    labels: list[int]
    splits: list[str]
    cameras: list[int] | None = None
    bboxes: list[BBox | None] | None = None
    ground_truth: dict | None = field(default=None)
