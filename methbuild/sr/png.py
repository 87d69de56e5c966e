"""Whole-image PNG encoding at a chosen deflate level, for the many small files of the SR layouts.

The rows get the PNG "Up" filter (one numpy subtraction) and the deflate stream comes from ISA-L
when installed (:mod:`methbuild.io.lowres_png`'s choice), zlib otherwise. BasicSR writes sub-images
with OpenCV at PNG compression 3 (zlib level 3); on photographic 480×480 crops ISA-L's level 3 with the
Up filter makes files within 1% of that size (benchmarks/bench_sr.py: 253 MB against 251 MB) for a
ninth of the deflate time, so level ``n`` here means ISA-L's level ``min(n, 3)``, or zlib's level ``n``
when ISA-L is not installed.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from methbuild.io.lowres_png import COLOUR_TYPE, FILTER_UP, IEND, SIGNATURE

try:
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - depends on the environment
    _isal = None


def _chunk(kind: bytes, data) -> bytes:
    data = bytes(data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(pixels: np.ndarray, level: int = 3) -> bytes:
    """The bytes of a lossless 8-bit PNG of ``pixels`` (H × W grey, or H × W × 1|3)."""
    a = np.asarray(pixels)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in COLOUR_TYPE or min(a.shape[:2]) < 1:
        raise ValueError(f"PNG encoder takes H×W or H×W×3 uint8 pixels, not {a.dtype} {a.shape}")
    h, w, bands = a.shape
    rows = a.reshape(h, w * bands)
    filtered = np.empty((h, w * bands + 1), np.uint8)
    filtered[:, 0] = FILTER_UP
    filtered[0, 1:] = rows[0]  # the row above the image is zero
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # wraps mod 256, as PNG wants
    if _isal is not None:
        data = _isal.compress(filtered.data, min(max(level, 0), 3))
    else:  # pragma: no cover - depends on the environment
        data = zlib.compress(filtered.data, level)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, COLOUR_TYPE[bands], 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + IEND
