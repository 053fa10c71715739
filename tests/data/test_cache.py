"""8-bit inputs, their batch normalisation, and the in-memory store of decoded training items."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from pipeline.data.cache import DecodedCache
from pipeline.data.dataset import MEAN_LEVELS, make_loader, normalize_batch, train_transform
from pipeline.data.views import OneViewPerImage, SeededView, ViewDataset, every_view


def test_batch_normalisation_by_hand():
    images = torch.tensor([0, 255, 128], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    expected = [(0 - 0.485) / 0.229, (1 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    out = normalize_batch(images)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 2, 2)
    assert torch.allclose(out[1, :, 1, 0], torch.tensor(expected), atol=1e-6)


def test_non_square_images_are_centred_on_the_mean_colour():
    pixels = np.full((2, 4, 3), 200, dtype=np.uint8)  # 4 wide, 2 high
    out = train_transform(4)(Image.fromarray(pixels))
    assert out.dtype == torch.uint8 and out.shape == (3, 4, 4)
    assert out[:, 1:3].eq(200).all()  # the image in rows 1-2, as v2.CenterCrop places it
    for row in (0, 3):
        assert out[:, row, 0].tolist() == list(MEAN_LEVELS)
    cropped = v2.CenterCrop(4)(torch.from_numpy(pixels).permute(2, 0, 1))
    assert torch.equal(cropped[:, 1:3], out[:, 1:3]) and cropped[:, 0].eq(0).all()  # v2.CenterCrop pads black
    assert normalize_batch(out[None])[0, :, 0].abs().max() < 0.01  # the padding is ~0 once normalised


class Counting(Dataset):
    """Items (image, label, key) that count how often they were made."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.calls += 1
        return torch.full((3, 2, 2), i, dtype=torch.uint8), 10 + i, 100 + i


class Broken(Counting):
    def __getitem__(self, i):
        raise AssertionError(f"item {i} decoded again")


def test_items_are_made_once_and_served_unchanged_from_memory():
    inner = Counting(5)
    cache = DecodedCache(inner, (3, 2, 2), budget_mb=1, shared=False)
    first = [cache[i] for i in range(5)]
    second = [cache[i] for i in range(5)]
    assert inner.calls == 5 and int(cache.filled.sum()) == 5
    for (a, la, ka), (b, lb, kb), i in zip(first, second, range(5)):
        assert torch.equal(a, b) and a[0, 0, 0] == i and (la, ka) == (lb, kb) == (10 + i, 100 + i)


def test_items_beyond_the_budget_are_made_every_time():
    inner = Counting(10)
    budget_of_three_items = 3 * 12 / 2**20
    cache = DecodedCache(inner, (3, 2, 2), budget_mb=budget_of_three_items, shared=False)
    assert cache.capacity == 3
    for _ in range(2):
        assert [cache[i][1] for i in range(10)] == list(range(10, 20))
    assert inner.calls == 3 + 2 * 7 and int(cache.filled.sum()) == 3
    assert DecodedCache(Counting(4), (3, 2, 2), budget_mb=0, shared=False).capacity == 0


def test_items_filled_by_a_loader_worker_are_seen_by_the_main_process():
    cache = DecodedCache(Counting(6), (3, 2, 2), budget_mb=1, shared=True)
    loader = make_loader(cache, batch_size=4, workers=1)
    first = [batch for batch in loader]
    assert int(cache.filled.sum()) == 6  # written by the worker, in shared memory
    cache.dataset = Broken(6)
    again = [batch for batch in make_loader(cache, batch_size=4, workers=0)]
    for a, b in zip(first, again):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("budget_mb", [1.0, 2 * 3 * 16 * 16 / 2**20])  # everything, and two of the six items
def test_cached_training_batches_equal_the_decoded_ones(tmp_path, budget_mb):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.jpg")
        Image.fromarray(rng.integers(0, 256, (30 + 4 * i, 40, 3), dtype=np.uint8)).save(paths[-1])
    rows, views = every_view(np.arange(3), 2)
    views_dataset = ViewDataset(paths, np.array([0, 1, 2]), rows, views, SeededView(16, seed=0))
    cache = DecodedCache(views_dataset, (3, 16, 16), budget_mb, shared=False)

    def epochs(dataset):
        loader = make_loader(dataset, 4, 0, seed=3, sampler=lambda g: OneViewPerImage(3, 2, g))
        return [batch for _ in range(3) for batch in loader]

    for cached, decoded in zip(epochs(cache), epochs(views_dataset)):
        assert cached[0].dtype == torch.float32
        assert all(torch.equal(x, y) for x, y in zip(cached, decoded))


def test_a_shared_store_never_outgrows_the_shared_memory(monkeypatch):
    monkeypatch.setattr("pipeline.data.cache.shared_memory_free", lambda: 10 * 12)
    cache = DecodedCache(Counting(100), (3, 2, 2), budget_mb=1, shared=True)
    assert cache.capacity == 5  # half of what is free
    assert DecodedCache(Counting(100), (3, 2, 2), budget_mb=1, shared=False).capacity == 100


def test_the_ranks_of_one_machine_share_the_shared_memory(monkeypatch):
    monkeypatch.setattr("pipeline.data.cache.shared_memory_free", lambda: 8 * 10 * 12)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # torchrun --nproc-per-node 8: eight stores on one /dev/shm
    cache = DecodedCache(Counting(100), (3, 2, 2), budget_mb=1, shared=True)
    assert cache.capacity == 5 and 8 * cache.capacity * 12 <= 8 * 10 * 12 // 2
