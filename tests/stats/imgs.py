"""Test images made in code: every format, EXIF rotation, broken files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def noise(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode == "L":
        return Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8), "L")
    im = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "RGB")
    return im if mode == "RGB" else im.convert(mode)


def save(path: Path, w: int, h: int, fmt: str, mode: str = "RGB", orientation: int | None = None, **kw) -> Path:
    """Write a ``w``×``h`` image (as stored) to ``path``; ``orientation`` adds an EXIF orientation tag."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = noise(w, h, mode)
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif
    im.save(path, fmt, **kw)
    return path


def gif_bytes(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("P", (w, h)).save(buf, "GIF")
    return buf.getvalue()
