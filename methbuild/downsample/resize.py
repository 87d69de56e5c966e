"""One image → one S×S row in the CIFAR layout; one chunk of images → one uint8 block.

Exact mode is the released sets' pipeline, pixel for pixel: ``Image.open``, ``convert("RGB")``,
``resize((S, S), method)`` (aspect ratio not kept, no EXIF rotation, as in the original scripts).
Fast mode first asks libjpeg for a DCT-domain shrink on load (``Image.draft``) to the smallest
power-of-two reduction (1/2, 1/4, 1/8) that still leaves at least ``draft·S`` pixels on each
side, then resizes the exact same way from that, with the crop box ``draft`` reports so that
image edges stay aligned. Non-JPEG files (a PNG named ``.JPEG``) decode in full either way, and so
does ``nearest``: a shrink-on-load averages pixels, which would turn nearest-neighbour sampling
(the paper's aliasing-prone baseline) into something else.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
from PIL import Image

from methbuild.io.imageinfo import DEFAULT_MAX_PIXELS  # the crawler's limit; re-exported for the CLI

METHODS: dict[str, Image.Resampling] = {
    "box": Image.Resampling.BOX,
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}
SIZES = (16, 32, 64)
DEFAULT_DRAFT = 2


def square(path: str, size: int, method: str, exact: bool = False, draft: int = DEFAULT_DRAFT,
           max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, str]:
    """``path`` squashed to ``size``×``size`` RGB (uint8, H×W×3) and what it was (``JPEG/CMYK``).

    An image declaring more than ``max_pixels`` pixels is refused from its header, before decoding."""
    with Image.open(path) as im:
        if im.width * im.height > max_pixels:
            raise ValueError(f"image is {im.width}x{im.height} ({im.width * im.height / 1e6:,.0f} MP), over the "
                             f"pixel limit of {max_pixels / 1e6:,.0f} MP (--max-pixels)")
        kind = f"{im.format}/{im.mode}"
        box = None
        if not exact and method != "nearest" and im.format == "JPEG":
            reduced = im.draft("RGB", (size * draft, size * draft))
            if reduced is not None:
                box = reduced[1]
        im.load()  # decodes; raises on a truncated file
        rgb = im if im.mode == "RGB" else im.convert("RGB")  # CMYK, L, P, RGBA: Pillow's conversion
        out = rgb.resize((size, size), METHODS[method], box=box)
    return np.asarray(out), kind


def to_row(img: np.ndarray) -> np.ndarray:
    """H×W×3 → one channel-planar row: all R (row-major), then all G, then all B."""
    return img.transpose(2, 0, 1).reshape(-1)


@dataclass(frozen=True)
class Chunk:
    """A task: consecutive output rows ``start..start+len(paths)`` of one split."""

    split: str
    index: int
    start: int
    paths: tuple[str, ...]  # absolute
    size: int
    method: str
    exact: bool
    draft: int
    max_pixels: int = DEFAULT_MAX_PIXELS


def downsample_chunk(chunk: Chunk) -> dict:
    """Run one chunk; an unreadable image leaves a zero row and an entry in ``failed``."""
    row_len = 3 * chunk.size * chunk.size
    block = np.zeros((len(chunk.paths), row_len), dtype=np.uint8)
    failed: list[tuple[int, str]] = []
    kinds: Counter[str] = Counter()
    cpu0 = time.process_time()
    # Pillow's own bomb guard (refusing to open more than 2 × its MAX_IMAGE_PIXELS) is replaced by ours in
    # square(): the same check, from the header, before decoding, at the limit the user chose.
    saved_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # EXIF and decompression-bomb warnings: the pixels are what matter
            for i, path in enumerate(chunk.paths):
                try:
                    img, kind = square(path, chunk.size, chunk.method, chunk.exact, chunk.draft, chunk.max_pixels)
                except Exception as exc:  # one bad file must not stop the chunk; reported at the end
                    failed.append((i, f"{type(exc).__name__}: {exc}"))
                    continue
                block[i] = to_row(img)
                kinds[kind] += 1
    finally:
        Image.MAX_IMAGE_PIXELS = saved_limit
    return {"block": block, "failed": failed, "kinds": dict(kinds), "cpu_seconds": time.process_time() - cpu0}
