import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.data.dataset import train_transform
from pipeline.data.decode import load_rgb
from pipeline.data.views import OneViewPerImage, PositivePairs, SeededView, ViewDataset, every_view, view_seed


def gradient_image(size=48):
    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack([x * 255 // size, y * 255 // size, (x * y) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb)


def test_view_zero_is_the_plain_image_and_views_repeat_exactly():
    image = gradient_image()
    view = SeededView(16, seed=3)
    assert torch.equal(view(image, 5, 0), train_transform(16)(image))
    assert torch.equal(view(image, 5, 1), view(image, 5, 1))
    assert not torch.equal(view(image, 5, 1), view(image, 6, 1))
    assert not torch.equal(view(image, 5, 1), view(image, 5, 2))
    assert not torch.equal(view(image, 5, 1), SeededView(16, seed=4)(image, 5, 1))


def test_teacher_and_student_resolutions_see_the_same_crop():
    image = gradient_image()
    for row in range(4):
        big = SeededView(32, seed=0)(image, row, 1).float()
        small = SeededView(16, seed=0)(image, row, 1).float()
        shrunk = F.interpolate(big[None], size=(16, 16), mode="bilinear", antialias=True)[0]
        other = SeededView(16, seed=0)(image, row + 10, 1).float()
        assert (shrunk - small).abs().mean() < 6 < (other - small).abs().mean()  # 8-bit levels


def test_only_the_plain_view_is_decoded_at_a_reduced_scale(tmp_path):
    path = tmp_path / "photo.jpg"
    gradient_image(256).save(path, quality=95)
    view = SeededView(32, seed=0)
    dataset = ViewDataset([path], np.array([0]), *every_view(np.array([0]), 2), view)
    assert load_rgb(path, 32).size == (32, 32)  # 1/8
    assert torch.equal(dataset[0][0], view(load_rgb(path, 32), 0, 0))
    assert torch.equal(dataset[1][0], view(load_rgb(path), 0, 1))  # the crop box is drawn in full-size pixels


def test_fresh_views_show_the_student_what_the_cached_path_shows_it(tmp_path):
    from pipeline.data.views import FreshViews
    path = tmp_path / "photo.jpg"
    gradient_image(256).save(path, quality=95)
    cached = ViewDataset([path], np.array([0]), *every_view(np.array([0]), 2), SeededView(32, seed=0))
    fresh = FreshViews([path], np.array([0]), np.array([0]), 32, 64, seed=0)
    assert torch.equal(fresh[0][0], cached[0][0])  # the plain view, decoded at the same reduced scale
    assert torch.equal(fresh[1][0], cached[1][0])  # view 1: the same crop
    assert fresh[1][3].shape == (3, 64, 64)  # and the teacher's at its own resolution


def test_view_dataset_items_are_view_major(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        gradient_image(8 + i).save(paths[-1])
    rows, views = every_view(np.array([0, 2]), 2)
    assert rows.tolist() == [0, 2, 0, 2] and views.tolist() == [0, 0, 1, 1]
    dataset = ViewDataset(paths, np.array([7, 8, 9]), rows, views, SeededView(8, 0))
    assert [dataset[i][1:] for i in range(4)] == [(7, 0), (9, 2), (7, 3), (9, 5)]


def test_one_view_per_image_shows_every_image_once_per_epoch():
    sampler = OneViewPerImage(5, 3, torch.Generator().manual_seed(0))
    first, second = list(sampler), list(sampler)
    for epoch in (first, second):
        assert sorted(i % 5 for i in epoch) == list(range(5)) and all(0 <= i < 15 for i in epoch)
    assert first != second


def test_positive_pairs_from_labels_views_and_neighbours():
    labels = np.array([0, 0, 1, 1, 1, 2, 2])
    n = len(labels)
    g = torch.Generator().manual_seed(1)
    pairs = np.array(list(PositivePairs(labels, 1, "labels", g))).reshape(-1, 2)
    assert sorted(pairs[:, 0]) == list(range(n))
    assert (labels[pairs[:, 0]] == labels[pairs[:, 1]]).all() and (pairs[:, 0] != pairs[:, 1]).all()

    pairs = np.array(list(PositivePairs(labels, 3, "views", g))).reshape(-1, 2)
    assert (pairs[:, 0] % n == pairs[:, 1] % n).all() and (pairs[:, 0] // n != pairs[:, 1] // n).all()

    partners = np.array([3, 4, 5, 6, 0, 1, 2])
    pairs = np.array(list(PositivePairs(labels, 2, "neighbours", g, partners))).reshape(-1, 2)
    assert (partners[pairs[:, 0] % n] == pairs[:, 1] % n).all()


def test_positive_pairs_refuse_what_cannot_pair():
    import pytest
    g = torch.Generator()
    with pytest.raises(Exception, match="extract.views >= 2"):
        PositivePairs(np.array([0, 0]), 1, "views", g)
    with pytest.raises(Exception, match="training image 2 is alone in its class"):
        PositivePairs(np.array([0, 0, 1]), 1, "labels", g)


def test_views_reseed_only_the_cpu_generator_and_keep_the_extracted_views(monkeypatch):
    image = gradient_image()
    before = torch.get_rng_state()
    with torch.random.fork_rng(devices=[]):  # how views were drawn when the cached features were extracted
        torch.manual_seed(view_seed(3, 5, 1))
        expected = SeededView(16, seed=3).augment(image)

    def refuse(seed):
        raise AssertionError("a view reseeded the CUDA generators")
    monkeypatch.setattr(torch.cuda, "manual_seed_all", refuse)
    monkeypatch.setattr(torch.cuda, "manual_seed", refuse)
    assert torch.equal(SeededView(16, seed=3)(image, 5, 1), expected)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's CPU stream is untouched


def test_random_erasing_covers_a_box_of_some_images_with_the_mean_colour_and_leaves_labels():
    import torch

    from pipeline.data.dataset import MEAN_LEVELS
    from pipeline.data.views import RandomlyErased

    images = [(torch.full((3, 16, 16), 7, dtype=torch.uint8), i % 2, i) for i in range(40)]
    erased = RandomlyErased(images, probability=0.5)
    changed = 0
    for i in range(40):
        image, label, item = erased[(i, 1000 + i)]
        assert torch.equal(erased[(i, 1000 + i)][0], image)  # the draw decides, not the process's generator
        assert (label, item) == (i % 2, i)
        hit = (image != 7).any(0)
        if hit.any():
            changed += 1
            assert image[:, hit].T.tolist() == [list(MEAN_LEVELS)] * int(hit.sum())
            rows, cols = torch.nonzero(hit, as_tuple=True)
            assert hit[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # one rectangle
    assert 8 < changed < 32  # about half
    assert erased.probability == 0.5 and len(erased) == 40


def test_the_ranks_shares_of_a_batch_are_the_single_process_batch_erasings_included(tmp_path):
    """Random erasing is drawn per place in the global epoch: rank r's share of every batch is the slice of the
    one-process batch (the same images, erased the same), and the shares of one batch erase differently."""
    import torch
    from PIL import Image

    from pipeline.train.batches import training_loader

    paths = []
    for i in range(16):  # one picture: any difference between two inputs is the erasing
        Image.new("RGB", (16, 16), (200, 40, 40)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    labels, rows = np.arange(16) % 4, np.arange(16)

    def batches(rank, world, workers=0):
        loader = training_loader(paths, labels, rows, 1, 0, 16, 8, (rank, world), random_erasing=0.99,
                                 workers=workers, seed=3)
        return [(images, items) for images, _, items in loader]

    whole = batches(0, 1)
    shares = [batches(0, 2), batches(1, 2, workers=1)]
    for b, (images, items) in enumerate(whole):
        assert torch.equal(torch.cat([shares[0][b][1], shares[1][b][1]]), items)
        assert torch.equal(torch.cat([shares[0][b][0], shares[1][b][0]]), images)
        assert not torch.equal(shares[0][b][0], shares[1][b][0])  # no box repeated rank to rank
