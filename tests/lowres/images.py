"""Test images made in code: natural-looking (smooth gradients, edges, mild noise) and high-frequency."""

from __future__ import annotations

import numpy as np


def natural(width: int, height: int, bands: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients, a few hard-edged rectangles and a little sensor-like noise (uint8)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.empty((height, width, bands))
    for c in range(bands):
        a, b = rng.uniform(-1, 1, 2)
        img[..., c] = 128 + 70 * np.sin(np.pi * ((2 + c) * a * x / width + 3 * b * y / height))
    for _ in range(12):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        img[y0: y0 + rng.integers(4, max(5, height // 3)), x0: x0 + rng.integers(4, max(5, width // 3))] += \
            rng.uniform(-70, 70, bands)
    img += rng.normal(0, 3, img.shape)
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out[..., 0] if bands == 1 else out


def high_frequency(width: int, height: int, kind: str, seed: int = 0) -> np.ndarray:
    """Content with energy up to Nyquist, where resampling differences show most (uint8)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    if kind == "noise":
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == "checker":  # one-pixel checkerboard: exactly Nyquist
        return (((x + y) % 2) * 255).astype(np.uint8)
    if kind == "zoneplate":  # frequency rising from 0 at the centre to Nyquist at the corners
        r2 = (x - width / 2) ** 2 + (y - height / 2) ** 2
        k = np.pi / (width + height) * 1.4
        return np.clip(np.rint(127.5 + 127.5 * np.cos(k * r2)), 0, 255).astype(np.uint8)
    raise ValueError(kind)
