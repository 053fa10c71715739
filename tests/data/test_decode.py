"""Images that must load correctly, and images that must be refused with their reason."""
import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.data.dataset import ImageListDataset, eval_transform
from pipeline.data.decode import load_rgb
from pipeline.errors import RdistillError


def rgb_at(path, xy=(0, 0)):
    return load_rgb(path).getpixel(xy)


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path, quality=100)
    r, g, b = rgb_at(path)
    assert r > 240 and g < 15 and b < 15  # red


def test_palette_png_with_transparency_lands_on_white(tmp_path):
    path = tmp_path / "palette.png"
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    image.putpixel((1, 1), 1)
    image.save(path, transparency=0)
    assert rgb_at(path, (0, 0)) == (255, 255, 255)  # transparent index, not black
    assert rgb_at(path, (1, 1)) == (200, 0, 0)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.array([[0, 32768], [65535, 1000]], dtype=np.uint16)).save(path)
    image = load_rgb(path)
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert image.getpixel((1, 0)) == (128, 128, 128)  # clipping would give 255
    assert image.getpixel((0, 1)) == (255, 255, 255)


def test_eight_bit_grey_and_rgba_over_white(tmp_path):
    grey, rgba = tmp_path / "grey.png", tmp_path / "rgba.png"
    Image.new("L", (3, 3), 77).save(grey)
    Image.new("RGBA", (3, 3), (255, 0, 0, 128)).save(rgba)
    assert rgb_at(grey) == (77, 77, 77)
    assert rgb_at(rgba) == (255, 127, 127)  # half-transparent red over white


def test_progressive_jpeg(tmp_path):
    path = tmp_path / "progressive.jpg"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(path, progressive=True, quality=95)
    assert load_rgb(path).size == (64, 48)


def test_exif_rotated_jpeg_is_turned_upright(tmp_path):
    path = tmp_path / "rotated.jpg"
    image = Image.new("RGB", (40, 20), (255, 255, 255))
    image.paste((0, 0, 0), (0, 0, 10, 20))  # black band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    image.save(path, exif=exif.tobytes(), quality=100)
    upright = load_rgb(path)
    assert upright.size == (20, 40)
    assert upright.getpixel((10, 2))[0] < 30 and upright.getpixel((10, 37))[0] > 225  # band now on top


def test_tiny_image_odd_names_and_upper_case_extension_go_through_the_dataset(tmp_path):
    paths = [tmp_path / "one.PNG", tmp_path / "with space été.JPG"]
    Image.new("RGB", (1, 1), (9, 9, 9)).save(paths[0])
    Image.new("RGB", (30, 10), (9, 9, 9)).save(paths[1], format="JPEG")
    dataset = ImageListDataset(paths, np.array([0, 1]), np.array([0, 1]), eval_transform(16))
    assert dataset[0][0].shape == (3, 16, 16) and dataset[1][0].shape == (3, 5, 16)
    assert torch.isfinite(dataset[0][0]).all()


def huge_png(path):
    """A valid 1×1 PNG whose header declares 100000 × 100000 pixels."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", 100000, 100000)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    path.write_bytes(bytes(data))


def truncated(path, fmt):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, format=fmt)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


@pytest.mark.parametrize("make, reason", [
    (lambda p: None, r"image file not found"),
    (lambda p: p.symlink_to(p.parent / "gone.jpg"), r"image file not found \(dangling symlink\)"),
    (lambda p: p.mkdir(), r"not a file"),
    (lambda p: p.write_bytes(b""), r"cannot decode image \(cannot identify image file"),
    (lambda p: truncated(p, "JPEG"), r"cannot decode image \(image file is truncated"),
    (lambda p: truncated(p, "PNG"), r"cannot decode image \("),
    (lambda p: p.write_text("just some words"), r"cannot decode image \(cannot identify image file"),
    (huge_png, r"cannot decode image \(Image size \(10000000000 pixels\) exceeds limit"),
])
def test_bad_files_are_refused_with_the_reason(tmp_path, make, reason):
    path = tmp_path / "bad.jpg"
    make(path)
    with pytest.raises(RdistillError, match=rf"^{tmp_path}/bad.jpg: {reason}"):
        load_rgb(path)


def smooth_jpeg(path, size=(400, 300)):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(size[1] // 20, size[0] // 20, 3), dtype=np.uint8)
    Image.fromarray(small).resize(size, Image.BICUBIC).save(path, quality=90)
    return path


def test_jpeg_is_decoded_at_the_smallest_scale_covering_min_size(tmp_path):
    path = smooth_jpeg(tmp_path / "photo.jpg")
    assert load_rgb(path).size == (400, 300)
    assert load_rgb(path, 64).size == (100, 75)  # 1/4: both sides still >= 64
    assert load_rgb(path, 100).size == (200, 150)  # 1/3 is no decoder scale: 1/2
    assert load_rgb(path, 160).size == (400, 300)  # 1/2 would leave 150 < 160


def test_min_size_leaves_other_formats_whole(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (400, 300), (10, 20, 30)).save(path)
    assert load_rgb(path, 64).size == (400, 300)


def test_reduced_decoding_gives_nearly_the_same_network_input(tmp_path):
    path = smooth_jpeg(tmp_path / "photo.jpg")
    transform = eval_transform(64)
    full, reduced = transform(load_rgb(path)), transform(load_rgb(path, 64))
    assert full.shape == reduced.shape == (3, 48, 64)
    assert (full.float() - reduced.float()).abs().mean() < 1.0  # within one 8-bit level on average


def test_dataset_decodes_reduced_but_crops_boxes_at_full_size(tmp_path):
    path = smooth_jpeg(tmp_path / "photo.jpg")
    plain = ImageListDataset([path], np.array([0]), np.array([0]), lambda image: image, decode_size=64)
    assert plain[0][0].size == (100, 75)
    boxed = ImageListDataset([path], np.array([0]), np.array([0]), lambda image: image, [(0, 0, 200, 100)], 64)
    assert boxed[0][0].size == (200, 100)


def test_image_checks_in_a_pool_equal_the_checks_in_this_process(tmp_path, monkeypatch):
    import hashlib

    import pipeline.data.checks as checks
    paths = []
    for i in range(12):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (5 + i, 7), (i * 20, 3, 9)).save(path)
        paths.append(path)
    paths[4].write_bytes(b"not an image")
    paths.append(tmp_path / "missing.png")
    monkeypatch.setattr(checks, "PARALLEL_FROM", 4)
    pooled = checks.check_images(paths, workers=2)
    alone = checks.check_images(paths, workers=1)
    assert pooled == alone
    bad, digests = pooled
    assert set(bad) == {4, 12} and "cannot decode image" in bad[4] and "image file not found" in bad[12]
    assert digests[0] == hashlib.md5(paths[0].read_bytes()).hexdigest() and digests[4] == ""
