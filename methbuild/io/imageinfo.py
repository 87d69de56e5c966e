"""Image sizes from file headers only — never a full decode.

Pillow's ``Image.open`` is lazy: it parses the header (and, for JPEG, the EXIF block) without
decoding pixels. Width and height are reported as a viewer shows the image: an EXIF
orientation of 5–8 (a rotated photo) swaps them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# The most pixels an image may declare before any command decodes it (decompression bombs: a 74-byte
# PNG can declare 100,000 x 100,000). The crawler's DEFAULT_PIXEL_LIMIT (methbuild.met.crawl) is the same
# 300 MP; lowres and downsample take it as their --max-pixels default. Checked from the header only.
DEFAULT_MAX_PIXELS = 300_000_000

# EXIF orientation tag; values 5–8 are transposed (rotated by 90° or 270°).
ORIENTATION_TAG = 0x0112
TRANSPOSED = {5, 6, 7, 8}


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str  # Pillow's format name: JPEG, PNG, TIFF, WEBP, BMP, GIF, ...
    mode: str  # Pillow's mode: L, RGB, CMYK, I;16, RGBA, ...
    orientation: int = 1  # the EXIF orientation (1 = as stored)


def probe(path: str | os.PathLike) -> ImageInfo:
    """Header facts of one image; raises ``ValueError`` for a file that is not a readable image."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = 1
            try:
                orientation = int(im.getexif().get(ORIENTATION_TAG, 1) or 1)
            except Exception:  # a broken EXIF block does not make the image unreadable
                orientation = 1
            # Pillow already reports a TIFF's size with its orientation tag applied.
            if orientation in TRANSPOSED and im.format != "TIFF":
                w, h = h, w
            return ImageInfo(w, h, im.format or "", im.mode, orientation)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not a readable image: {exc}") from None
