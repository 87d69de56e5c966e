"""A grayscale PNG writer whose cost follows the content, not the canvas.

A Megapixel MNIST image is a black canvas with a few dozen 28×28 patches on it: at 10,000² that is
100 MB of pixels of which ~4,000 are not zero. A general encoder (libpng, zlib over every row) pays
for all 100 MB. This one takes the image as its patches and writes the PNG stream directly:

* rows no patch touches are runs of zeros; their DEFLATE bytes are computed once per process for a
  few power-of-two lengths (each ends with a sync flush, so independent pieces concatenate into one
  valid stream), and their Adler-32 contribution is arithmetic (appending n zero bytes leaves the
  running sum ``a`` unchanged and adds ``n·a`` to ``b``);
* only the rows a patch touches are composed (patches pasted in order, later ones covering earlier
  ones, as the generators paste them) and compressed.

The cost is therefore O(rows with content × width + empty runs × log), and the output is an ordinary
8-bit grayscale PNG (filter 0 on every row) that any decoder reads.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from methbuild.io.atomic import atomic_path

try:  # ISA-L's DEFLATE is ~30x faster than zlib's on these mostly-zero rows (it ships with methbuild[vips])
    from isal import isal_zlib as _fast
except ImportError:  # pragma: no cover - the plain zlib gives the same pixels, a little slower
    _fast = zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ADLER_MOD = 65521
CONTENT_LEVEL = 1  # rows with patches: fast; they are mostly zeros anyway (ISA-L levels are 0-3)
ZERO_LEVEL = 9  # empty rows: compressed once per process and cached, so spend the effort
BIG_ZERO = 1 << 22  # empty runs are cut into 4 MiB pieces ...
SMALL_ZERO = 1 << 16  # ... then power-of-two pieces down to 64 KiB; the rest is compressed directly
MAX_SIDE = 2**31 - 1  # PNG's limit on width and height

Patch = tuple[int, int, np.ndarray]  # (y, x, 2-D uint8 block): top-left corner and pixels


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@lru_cache(maxsize=64)
def _zero_piece(nbytes: int) -> bytes:
    """Raw DEFLATE of ``nbytes`` zero bytes, ending byte-aligned (sync flush), no final block."""
    comp = zlib.compressobj(ZERO_LEVEL, zlib.DEFLATED, -15)
    return comp.compress(bytes(nbytes)) + comp.flush(zlib.Z_SYNC_FLUSH)


def _zero_run(n: int, pieces: list[bytes]) -> None:
    q, r = divmod(n, BIG_ZERO)
    pieces.extend([_zero_piece(BIG_ZERO)] * q)
    bit = BIG_ZERO >> 1
    while bit >= SMALL_ZERO:
        if r >= bit:
            pieces.append(_zero_piece(bit))
            r -= bit
        bit >>= 1
    if r:
        comp = _fast.compressobj(CONTENT_LEVEL, _fast.DEFLATED, -15)
        pieces.append(comp.compress(bytes(r)) + comp.flush(_fast.Z_SYNC_FLUSH))


def clip_patches(height: int, width: int, patches: Sequence[Patch]) -> list[Patch]:
    """The parts of ``patches`` inside the canvas (empty ones dropped), in the same order."""
    out = []
    for y, x, block in patches:
        h, w = block.shape
        y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + h, height), min(x + w, width)
        if y0 < y1 and x0 < x1:
            out.append((y0, x0, block[y0 - y: y1 - y, x0 - x: x1 - x]))
    return out


def compose(height: int, width: int, patches: Sequence[Patch]) -> np.ndarray:
    """The dense image (for tests and small canvases): zeros, then every patch pasted in order."""
    canvas = np.zeros((height, width), np.uint8)
    for y, x, block in clip_patches(height, width, patches):
        canvas[y: y + block.shape[0], x: x + block.shape[1]] = block
    return canvas


def encode(height: int, width: int, patches: Sequence[Patch]) -> bytes:
    """The PNG file (8-bit grayscale) of a black ``height``×``width`` canvas with ``patches`` pasted in order."""
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise ValueError(f"PNG sides must be 1..{MAX_SIDE} (got {width}x{height})")
    patches = clip_patches(height, width, patches)
    row = width + 1  # the filter-type byte (0) then the pixels
    # Merge the patches' row intervals into bands of rows with content; each patch falls in one band.
    # Bands closer than SMALL_ZERO bytes are merged too: compressing a short gap costs less than the
    # extra pieces (on a 1500² canvas the whole image is then a band or two).
    gap = SMALL_ZERO // row
    order = sorted(range(len(patches)), key=lambda i: patches[i][0])
    bands: list[list[int]] = []  # [top, bottom, patch indices...]
    for i in order:
        y, _, block = patches[i]
        if bands and y < bands[-1][1] + gap:
            bands[-1][1] = max(bands[-1][1], y + block.shape[0])
            bands[-1].append(i)
        else:
            bands.append([y, y + block.shape[0], i])
    pieces: list[bytes] = [b"\x78\x01"]  # zlib header: DEFLATE, 32 KiB window, no dictionary
    a, b = 1, 0  # Adler-32 of the uncompressed stream so far
    y = 0
    for top, bottom, *members in bands:
        if top > y:
            n = (top - y) * row
            _zero_run(n, pieces)
            b = (b + n * a) % ADLER_MOD
        band = np.zeros((bottom - top, row), np.uint8)
        for i in sorted(members):  # paint order: a later patch covers an earlier one
            py, px, block = patches[i]
            band[py - top: py - top + block.shape[0], 1 + px: 1 + px + block.shape[1]] = block
        data = band  # C-contiguous: passed to the compressor as a flat buffer
        comp = _fast.compressobj(CONTENT_LEVEL, _fast.DEFLATED, -15)
        pieces.append(comp.compress(data) + comp.flush(_fast.Z_SYNC_FLUSH))
        adler = _fast.adler32(data, (b << 16) | a)
        a, b = adler & 0xFFFF, adler >> 16
        y = bottom
    if y < height:
        n = (height - y) * row
        _zero_run(n, pieces)
        b = (b + n * a) % ADLER_MOD
    pieces.append(b"\x03\x00")  # the final block: fixed Huffman, empty (BFINAL=1, BTYPE=01, end-of-block)
    pieces.append(struct.pack(">I", (b << 16) | a))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray, deflate, filter 0, no interlace
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(pieces)) + _chunk(b"IEND", b"")


def write(path: str | Path, height: int, width: int, patches: Sequence[Patch]) -> int:
    """Write :func:`encode`'s PNG to ``path`` atomically; return its size in bytes."""
    data = encode(height, width, patches)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return len(data)
