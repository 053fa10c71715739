"""Torch Dataset over an image list, and the transforms and collation it needs."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, default_collate
from torchvision.transforms import v2

from pipeline.data.decode import load_rgb
from pipeline.errors import RdistillError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The mean colour in 8-bit levels: the padding of non-square images, close to 0 once normalised.
MEAN_LEVELS = tuple(round(255 * m) for m in IMAGENET_MEAN)


def eval_transform(image_size: int) -> v2.Compose:
    """8-bit image tensor with its longer side resized to `image_size` (aspect kept); normalised per batch."""
    return v2.Compose([v2.ToImage(), v2.Resize(size=None, max_size=image_size, antialias=True)])


class CenterOnCanvas(v2.Transform):
    """Centre an image on a size × size canvas of the mean colour (as v2.CenterCrop, which pads with black)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def transform(self, inpt, params):
        height, width = inpt.shape[-2:]
        pad_x, pad_y = max(self.size - width, 0), max(self.size - height, 0)
        padding = [pad_x // 2, pad_y // 2, pad_x - pad_x // 2, pad_y - pad_y // 2]  # left, top, right, bottom
        return v2.functional.center_crop(v2.functional.pad(inpt, padding, fill=list(MEAN_LEVELS)), [self.size])


def train_transform(image_size: int) -> v2.Compose:
    """As eval_transform, then centred on a square canvas so that batches stack."""
    return v2.Compose([*eval_transform(image_size).transforms, CenterOnCanvas(image_size)])


def normalize_batch(images: torch.Tensor) -> torch.Tensor:
    """8-bit (B, 3, H, W) images -> float32 network input with ImageNet normalisation, one batch at a time."""
    return v2.functional.normalize(v2.functional.to_dtype(images, torch.float32, scale=True), IMAGENET_MEAN, IMAGENET_STD)


class ImageListDataset(Dataset):
    """Items (image tensor, label, row) for the chosen rows of an image list; rows with a bbox are cropped first.

    `decode_size`: the largest side the transform produces; JPEGs are then decoded at a reduced scale
    that still covers it (see load_rgb).
    """

    def __init__(self, paths: Sequence[Path], labels: np.ndarray, rows: np.ndarray, transform,
                 bboxes: Sequence | None = None, decode_size: int | None = None):
        self.paths, self.labels, self.rows, self.transform = paths, labels, np.asarray(rows), transform
        self.bboxes, self.decode_size = bboxes, decode_size

    def __len__(self) -> int:
        return len(self.rows)

    def load(self, i: int, decode_size: int | None = None):
        """(PIL image, label, row) of item i, decoded (at a reduced scale covering decode_size) and cropped."""
        row = int(self.rows[i])
        box = self.bboxes[row] if self.bboxes is not None else None
        try:
            image = load_rgb(self.paths[row], decode_size if box is None else None)  # boxes are in full-size pixels
        except RdistillError as exc:
            raise RdistillError(f"{exc} (row {row})") from None
        if box is not None:
            image = image.crop(tuple(round(v) for v in box))
        return image, int(self.labels[row]), row

    def __getitem__(self, i: int):
        image, label, row = self.load(i, self.decode_size)
        return self.transform(image), label, row


def collate_normalized(items: list) -> tuple[torch.Tensor, ...]:
    """Stack (8-bit image, label, row[, 8-bit image]) items and normalise each image batch as a whole: (images,
    labels, rows[, images]), the second images (an online teacher's input) at their own resolution."""
    images, labels, rows, *others = default_collate(items)
    return normalize_batch(images), labels, rows, *(normalize_batch(o) for o in others)


def collate_by_shape(items: list) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Collate into groups of equal image shape: [(images, labels, rows), ...], each normalised."""
    groups: dict[tuple, list] = {}
    for item in items:
        groups.setdefault(tuple(item[0].shape), []).append(item)
    return [collate_normalized(group) for group in groups.values()]


class EpochSeeded(Sampler):
    """Another sampler whose generator is seeded anew from (seed, epoch) at the start of every epoch, so that an
    epoch's order and draws depend on its number only: a resumed run (`epoch` restored) draws what the
    uninterrupted one drew, whatever else drew from the generator in between (a DataLoader draws its
    workers' base seed from it when it starts them)."""

    def __init__(self, sampler: Sampler, generator: torch.Generator, seed: int):
        self.sampler, self.generator, self.seed, self.epoch = sampler, generator, seed, 0

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        self.generator.manual_seed(int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1, np.uint64)[0]))
        self.epoch += 1
        yield from self.sampler


def make_loader(dataset: Dataset, batch_size: int, workers: int, shuffle: bool = False,
                seed: int = 0, by_shape: bool = False, sampler=None, drop_last: bool = False) -> DataLoader:
    """A DataLoader of normalised image batches with seeded shuffling, pinned memory on CUDA and persistent workers.

    `drop_last` (training): every batch has batch_size items; the few left over change with each epoch's order.

    `sampler`, when given, is called with the loader's seeded generator and returns the Sampler (default with
    `shuffle`: a random permutation). `shuffle` draws each epoch's order from (seed, epoch) alone
    (EpochSeeded), so a resumed run and any number of workers see the same orders.
    """
    generator = torch.Generator().manual_seed(seed)
    order = RandomSampler(dataset, generator=generator) if shuffle else None
    if sampler is not None:
        order = sampler(generator)
    return DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, generator=generator,
        sampler=EpochSeeded(order, generator, seed) if shuffle else order,
        collate_fn=collate_by_shape if by_shape else collate_normalized, pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0, drop_last=drop_last,
    )
