"""Decoding any image file to upright 8-bit RGB, or refusing it with the reason."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.errors import RdistillError

# Errors PIL raises for files it cannot decode: unknown formats, truncated data, broken chunks,
# and its decompression-bomb guard (left on: huge declared dimensions are refused).
DECODE_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError)
WHITE = (255, 255, 255)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: 16/32-bit grey rescaled (not clipped), transparency over white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(pixels.max()), 1.0)
        return Image.fromarray(np.clip(np.rint(pixels / top * 255), 0, 255).astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, WHITE + (255,))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def load_rgb(path: Path, min_size: int | None = None) -> Image.Image:
    """Decode an image file to upright RGB; RdistillError with the reason when it cannot be.

    With `min_size`, a JPEG is decoded at the smallest of the decoder's own scales (1, 1/2, 1/4, 1/8)
    that keeps both sides >= min_size: far less work when the network's input is much smaller than the file.
    """
    require_file(path)
    return decode_rgb(path, path, min_size)


def require_file(path: Path) -> None:
    """Refuse a missing path, a dangling link or a directory, naming it."""
    if not path.exists():
        raise RdistillError(f"{path}: image file not found" + (" (dangling symlink)" if path.is_symlink() else ""))
    if not path.is_file():
        raise RdistillError(f"{path}: not a file")


def decode_rgb(source, path: Path, min_size: int | None = None) -> Image.Image:
    """Decode `source` (a path or a binary file object holding the file's bytes) as load_rgb does; errors name `path`."""
    try:
        with Image.open(source) as image:
            if min_size is not None and image.format == "JPEG":
                image.draft(image.mode, (min_size, min_size))
            image.load()  # decode everything now: truncated data fails here instead of becoming grey
            return _to_rgb(ImageOps.exif_transpose(image))
    except DECODE_ERRORS as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(source, (str, Path)):  # PIL names the file object: name the file instead
            reason = reason.replace(repr(source), repr(str(path)))
        raise RdistillError(f"{path}: cannot decode image ({reason})") from None
