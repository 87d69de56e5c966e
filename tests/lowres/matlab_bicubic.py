"""A float64 port of MATLAB ``imresize(A, 1/s, 'bicubic')`` written from the algorithm's description.

Keys' cubic convolution kernel with a = -0.5:

    k(x) = 1.5|x|^3 - 2.5|x|^2 + 1           for |x| <= 1
           -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2   for 1 < |x| <= 2
           0                                 otherwise

When shrinking by s (antialiasing on, MATLAB's default) the kernel is stretched by s and
scaled by 1/s: h(x) = k(x / s) / s, support 4s. Output pixel i (1-based) samples input
coordinate u = i·s + 0.5·(1 − s) (pixel centres aligned), the taps are the integers around u,
their weights h(u − j) are normalised to sum 1, and an index that falls outside the image is
mirrored with the edge pixel repeated (…, 2, 1, 1, 2, …). The resize is separable: rows first,
then columns (MATLAB resizes along the dimension with the smaller scale first; they are equal
here, and in float64 the order changes nothing measurable).

This is the tests' reference; it shares no code with ``methbuild.lowres``.
"""

from __future__ import annotations

import math

import numpy as np


def keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (a + 2) * ax3 - (a + 3) * ax2 + 1
    far = a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a
    return np.where(ax <= 1, near, np.where(ax <= 2, far, 0.0))


def contributions(in_len: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, weights), each out_len × taps: 0-based input indices and normalised weights."""
    out_len = in_len // scale
    width = 4.0 * scale  # kernel support widened by the scale (antialiasing)
    i = np.arange(1, out_len + 1, dtype=np.float64)
    u = i * scale + 0.5 * (1 - scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based
    w = keys_cubic((u[:, None] - idx) / scale) / scale
    w /= w.sum(axis=1, keepdims=True)
    # symmetric mirror with the edge repeated: aux = [1..n, n..1]
    aux = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    idx0 = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    return idx0, w


def _resize_axis(a: np.ndarray, scale: int, axis: int) -> np.ndarray:
    idx, w = contributions(a.shape[axis], scale)
    a = np.moveaxis(a, axis, 0)
    out = np.einsum("ot,ot...->o...", w, a[idx])
    return np.moveaxis(out, 0, axis)


def imresize_down(image: np.ndarray, scale: int) -> np.ndarray:
    """``image`` (H × W or H × W × C, any dtype) shrunk by the integer ``scale``, as float64."""
    a = np.asarray(image, dtype=np.float64)
    a = _resize_axis(a, scale, 0)
    return _resize_axis(a, scale, 1)


def psnr(test: np.ndarray, reference: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((np.asarray(test, np.float64) - np.asarray(reference, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)
