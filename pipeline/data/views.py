"""Seeded augmented views (consistent teaching) and the samplers that pick views and positive pairs.

An *item* is one view of one image: item = view · N + row, with N the list's length. View 0 is
the image itself; view v > 0 is a random crop and flip drawn from a generator seeded by
(seed, row, v), so the teacher (at extraction) and the student (in training) see the same view,
each at its own resolution.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import v2

from pipeline.data.dataset import MEAN_LEVELS, ImageListDataset, eval_transform, make_loader, train_transform
from pipeline.data.listfile import ImageList
from pipeline.errors import RdistillError


def view_seed(seed: int, row: int, view: int) -> int:
    """The generator seed of one view: distinct for every (seed, row, view)."""
    return (seed * 1_000_003 + row) * 1_009 + view


class SeededView:
    """Transform of view `v`: v = 0 `plain` (default: the square image); v > 0 a seeded random resized crop and flip."""

    def __init__(self, image_size: int, seed: int, plain=None):
        self.plain = plain or train_transform(image_size)
        self.image_size = image_size
        self.augment = v2.Compose([v2.RandomResizedCrop(image_size, scale=(0.5, 1.0), antialias=True),
                                   v2.RandomHorizontalFlip(), *train_transform(image_size).transforms])
        self.seed = seed

    def __call__(self, image, row: int, view: int):
        if view == 0:
            return self.plain(image)
        # The crop box is drawn in the source image's own coordinates, so every resolution gets the same view.
        # torchvision draws from the CPU default generator: it is seeded alone (torch.manual_seed would also
        # reseed every CUDA generator, which fork_rng(devices=[]) does not restore) and restored afterwards.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(view_seed(self.seed, row, view))
            return self.augment(image)


class ViewDataset(Dataset):
    """Items (image tensor, label, item) for given (row, view) keys; item = view · n_rows + row."""

    def __init__(self, paths: Sequence[Path], labels: np.ndarray, rows: np.ndarray, views: np.ndarray,
                 transform: SeededView, bboxes: Sequence | None = None):
        self.images = ImageListDataset(paths, labels, rows, lambda image: image, bboxes)
        self.views, self.transform, self.n_rows = np.asarray(views), transform, len(paths)

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, i: int):
        view = int(self.views[i])
        # Only the plain view may be decoded at a reduced scale: a crop box is drawn from the full image's size.
        image, label, row = self.images.load(i, self.transform.image_size if view == 0 else None)
        return self.transform(image, row, view), label, view * self.n_rows + row


def item_loader(image_list: ImageList, items: np.ndarray, image_size: int, seed: int, batch_size: int,
                workers: int) -> DataLoader:
    """Batches of items (view · N + row) as extraction describes them: view 0 the image with its longer side
    at `image_size`, view v > 0 its seeded crop and flip (pipeline.data.views), grouped by shape."""
    n_rows = len(image_list)
    dataset = ViewDataset(image_list.paths, image_list.labels, items % n_rows, items // n_rows,
                          SeededView(image_size, seed, eval_transform(image_size)), image_list.bboxes)
    return make_loader(dataset, batch_size, workers, by_shape=True)


# Online training draws each image's crop afresh among views 1..FRESH_VIEWS: view_seed keeps (seed, row, view)
# distinct for views below 1,009.
FRESH_VIEWS = 1008


class FreshViews(Dataset):
    """Every view v = 0..FRESH_VIEWS of the given rows (0 the plain image, v > 0 a seeded crop and flip), each at
    two resolutions at once: items (student image, label, item, teacher image), one decoded image giving both.
    Index i is view i // n of rows[i % n]; item = view · n_rows + row, as for cached views, so a crop box is the
    one a cache of that many views would hold."""

    def __init__(self, paths: Sequence[Path], labels: np.ndarray, rows: np.ndarray, student_size: int,
                 teacher_size: int, seed: int, bboxes: Sequence | None = None):
        self.rows = np.asarray(rows, dtype=np.int64)
        self.images = ImageListDataset(paths, labels, self.rows, lambda image: image, bboxes)
        self.student, self.teacher = SeededView(student_size, seed), SeededView(teacher_size, seed)
        self.n_rows = len(paths)

    def __len__(self) -> int:
        return (FRESH_VIEWS + 1) * len(self.rows)

    def __getitem__(self, i: int):
        position, view = i % len(self.rows), i // len(self.rows)
        # as ViewDataset: only the plain view may be decoded at a reduced scale (a crop box is drawn from the full size)
        image, label, row = self.images.load(position, self.student.image_size if view == 0 else None)
        return self.student(image, row, view), label, view * self.n_rows + row, self.teacher(image, row, view)


class RandomlyErased(Dataset):
    """Items of another dataset whose 8-bit image has, with `probability`, a random rectangle filled with the
    mean colour (random erasing, D3still's training augmentation). It acts on the student's input only, after
    the seeded view, so the view still matches its cached teacher feature.

    Keys are (index, draw) pairs (WithDraws): the rectangle comes from the draw the sampler made for that
    place in the epoch, not from the state of the worker process that happens to load it, so it is the same
    after a resume and with any number of workers, and differs between the ranks' shares of a batch."""

    def __init__(self, dataset: Dataset, probability: float):
        self.dataset, self.probability = dataset, probability
        self.erase = v2.RandomErasing(probability, value=list(MEAN_LEVELS))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        i, draw = key
        image, *rest = self.dataset[i]  # (image, label, item[, the teacher's image, left as it is])
        with torch.random.fork_rng(devices=[]):  # torchvision draws from torch's global CPU generator: it alone
            torch.default_generator.manual_seed(draw)  # is seeded (torch.manual_seed would reseed CUDA's too)
            return self.erase(image), *rest


class WithDraws(Sampler):
    """Another sampler's indices, each paired with a random 63-bit draw from `generator` (made after the
    indices): keys of RandomlyErased."""

    def __init__(self, sampler: Sampler, generator: torch.Generator):
        self.sampler, self.generator = sampler, generator

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        indices = list(self.sampler)
        draws = torch.randint(2**63 - 1, (len(indices),), generator=self.generator).tolist()
        yield from zip(indices, draws)


def every_view(rows: np.ndarray, n_views: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, views) keys of all n_views views of `rows`, view-major."""
    rows = np.asarray(rows, dtype=np.int64)
    return np.tile(rows, n_views), np.repeat(np.arange(n_views), len(rows))


class OneViewPerImage(Sampler):
    """Each epoch, every image once in random order, each as one of its V views (uniformly)."""

    def __init__(self, n_images: int, n_views: int, generator: torch.Generator):
        self.n_images, self.n_views, self.generator = n_images, n_views, generator

    def __len__(self) -> int:
        return self.n_images

    def __iter__(self):
        order = torch.randperm(self.n_images, generator=self.generator)
        views = torch.randint(self.n_views, (self.n_images,), generator=self.generator)
        yield from (views * self.n_images + order).tolist()


class FreshViewPerImage(OneViewPerImage):
    """Each epoch, every image once in random order (indices into FreshViews): the plain image with probability
    1 / n_views, as a cache of n_views views shows it, else a crop drawn uniformly among FRESH_VIEWS, in
    practice one never seen before, where the cache would show one of its n_views − 1 fixed crops."""

    def __iter__(self):
        order = torch.randperm(self.n_images, generator=self.generator)
        cropped = torch.randint(self.n_views, (self.n_images,), generator=self.generator) > 0
        crops = torch.randint(1, FRESH_VIEWS + 1, (self.n_images,), generator=self.generator)
        yield from (torch.where(cropped, crops, 0) * self.n_images + order).tolist()


class PositivePairs(Sampler):
    """Each epoch, every image once as an anchor x_i, followed by its positive y_i (Whiten-MTD).

    Indices are into every_view(train rows, V). Positives: `labels`, another image of the same
    label; `views`, another view of the same image; `neighbours`, the given partner row. Each
    image shows a random one of its views. Batches of 2B indices are B pairs, x and y alternating.
    """

    def __init__(self, labels: np.ndarray, n_views: int, mode: str, generator: torch.Generator,
                 partners: np.ndarray | None = None):
        self.n_images, self.n_views, self.mode, self.generator = len(labels), n_views, mode, generator
        if mode == "views" and n_views < 2:
            raise RdistillError("positive pairs from views need extract.views >= 2")
        if mode == "labels":
            if (labels < 0).any():
                raise RdistillError("positive pairs from labels need every training image labelled")
            self.by_label = [np.flatnonzero(labels == c) for c in np.unique(labels)]
            lonely = [c for c in self.by_label if len(c) < 2]
            if lonely:
                raise RdistillError(f"positive pairs from labels: training image {lonely[0][0]} is alone in its class")
            self.label_of = np.searchsorted(np.unique(labels), labels)
        elif mode == "neighbours" and partners is None:
            raise RdistillError("positive pairs from neighbours need mined neighbours")
        self.partners = partners

    def __len__(self) -> int:
        return 2 * self.n_images

    def _partner(self, anchors: torch.Tensor) -> np.ndarray:
        if self.mode == "views":
            return anchors.numpy()
        if self.mode == "neighbours":
            return self.partners[anchors.numpy()]
        draws = torch.rand(len(anchors), generator=self.generator).numpy()
        partner = np.empty(len(anchors), dtype=np.int64)
        for i, anchor in enumerate(anchors.tolist()):
            same = self.by_label[self.label_of[anchor]]
            others = same[same != anchor]
            partner[i] = others[int(draws[i] * len(others))]
        return partner

    def __iter__(self):
        anchors = torch.randperm(self.n_images, generator=self.generator)
        partners = torch.from_numpy(self._partner(anchors))
        view_x = torch.randint(self.n_views, (self.n_images,), generator=self.generator)
        if self.mode == "views":  # a second, different view of the same image
            view_y = (view_x + 1 + torch.randint(self.n_views - 1, (self.n_images,), generator=self.generator)) % self.n_views
        else:
            view_y = torch.randint(self.n_views, (self.n_images,), generator=self.generator)
        pairs = torch.stack([view_x * self.n_images + anchors, view_y * self.n_images + partners], dim=1)
        yield from pairs.flatten().tolist()
