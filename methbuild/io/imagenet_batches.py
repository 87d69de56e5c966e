"""The downsampled-ImageNet batch files (paper 004, SPEC §5): the CIFAR layout, pickled or ``.npz``.

A batch is a dict: ``data`` (uint8, N × 3·S·S, each row channel-planar R|G|B, each plane
row-major), ``labels`` (a list of Python ints, 1-based) and, in train batches only, ``mean``
(float64, length 3·S·S, over all train images). Files: ``train_data_batch_1`` …
``train_data_batch_10`` and ``val_data``; with ``npz`` the same names with ``.npz``.

The pickle writer streams the pixel array straight from its buffer into the file (no
``tobytes()`` copy, so writing a batch costs no memory beyond the batch itself) and names the
array constructor ``numpy.core.multiarray._reconstruct``, the name every NumPy since 1.0
resolves (NumPy 2 keeps it as a pickle-compatibility alias; its own default,
``numpy._core``, cannot be loaded by NumPy 1.x: numpy/numpy#28340). The opcodes are otherwise those NumPy
itself emits at protocol 4, so ``pickle.load`` gives an ordinary writable ``ndarray``.
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from methbuild.io.atomic import atomic_path

FORMATS = ("pickle", "npz")
N_TRAIN_BATCHES = 10
TRAIN_STEMS = tuple(f"train_data_batch_{k}" for k in range(1, N_TRAIN_BATCHES + 1))
VAL_STEM = "val_data"
PICKLE_PROTOCOL = 4  # loads on every Python 3.4+; BINBYTES8 lets a batch exceed 4 GiB
NUMPY_RECONSTRUCT = ("numpy.core.multiarray", "_reconstruct")


def file_name(stem: str, fmt: str) -> str:
    """The file name of a batch ``stem`` (``train_data_batch_3``, ``val_data``) in ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown batch format {fmt!r}")
    return stem + (".npz" if fmt == "npz" else "")


def all_file_names(fmt: str) -> list[str]:
    """The 11 files of a complete dataset, train batches first."""
    return [file_name(s, fmt) for s in (*TRAIN_STEMS, VAL_STEM)]


def train_batch_bounds(n: int) -> list[tuple[int, int]]:
    """Row ranges of the ten train batches: 1–9 hold n // 10 rows, batch 10 the rest."""
    per = n // N_TRAIN_BATCHES
    bounds = [(k * per, (k + 1) * per) for k in range(N_TRAIN_BATCHES - 1)]
    bounds.append(((N_TRAIN_BATCHES - 1) * per, n))
    return bounds


class _BatchPickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table can be extended
    """Protocol-4 pickler that writes ndarrays from their buffer, without an intermediate copy."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_stack_global(self, module: str, name: str) -> None:
        self.save(module)
        self.save(name)
        self.write(pickle.STACK_GLOBAL)

    def _save_raw(self, buf: memoryview) -> None:
        n = buf.nbytes
        if n <= 0xFF:
            self.write(pickle.SHORT_BINBYTES + struct.pack("<B", n) + buf.tobytes())
        elif n > 0xFFFFFFFF:
            self._write_large_bytes(pickle.BINBYTES8 + struct.pack("<Q", n), buf)
        elif n >= self.framer._FRAME_SIZE_TARGET:
            self._write_large_bytes(pickle.BINBYTES + struct.pack("<I", n), buf)
        else:
            self.write(pickle.BINBYTES + struct.pack("<I", n) + buf.tobytes())

    def _save_ndarray(self, arr: np.ndarray) -> None:
        if arr.dtype.hasobject:
            raise pickle.PicklingError("object arrays are not batch data")
        arr = np.ascontiguousarray(arr)
        # _reconstruct(ndarray, (0,), b'b') then __setstate__((1, shape, dtype, is_fortran, raw))
        self._save_stack_global(*NUMPY_RECONSTRUCT)
        self.save((np.ndarray, (0,), b"b"))
        self.write(pickle.REDUCE)
        self.write(pickle.MARK)
        self.save(1)
        self.save(tuple(int(d) for d in arr.shape))
        self.save(arr.dtype)
        self.save(False)
        self._save_raw(memoryview(arr.reshape(-1).view(np.uint8)))
        self.write(pickle.TUPLE)
        self.write(pickle.BUILD)

    dispatch[np.ndarray] = _save_ndarray


def _check(data: np.ndarray, labels: list[int], mean: np.ndarray | None) -> None:
    if data.dtype != np.uint8 or data.ndim != 2:
        raise ValueError(f"data must be a 2-D uint8 array, got {data.dtype} {data.shape}")
    if len(labels) != data.shape[0]:
        raise ValueError(f"{len(labels)} labels for {data.shape[0]} rows")
    if mean is not None and (mean.dtype != np.float64 or mean.shape != (data.shape[1],)):
        raise ValueError(f"mean must be float64 of length {data.shape[1]}, got {mean.dtype} {mean.shape}")


def write_batch(final: str | os.PathLike, data: np.ndarray, labels: list[int], mean: np.ndarray | None = None,
                fmt: str = "pickle") -> None:
    """Write one batch atomically to ``final``: it appears complete under its name, or not at all."""
    data = np.asarray(data).view(np.ndarray)  # a memmap view pickles as a plain array
    labels = [int(v) for v in labels]
    _check(data, labels, mean)
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as fh:
            if fmt == "pickle":
                record: dict[str, Any] = {"data": data, "labels": labels}
                if mean is not None:
                    record["mean"] = np.asarray(mean, dtype=np.float64).view(np.ndarray)
                _BatchPickler(fh, protocol=PICKLE_PROTOCOL).dump(record)
            elif fmt == "npz":
                arrays = {"data": data, "labels": np.asarray(labels, dtype=np.int64)}
                if mean is not None:
                    arrays["mean"] = np.asarray(mean, dtype=np.float64)
                np.savez(fh, **arrays)  # uncompressed: pixels of small images barely compress
            else:
                raise ValueError(f"unknown batch format {fmt!r}")


def read_batch(path: str | os.PathLike) -> dict[str, Any]:
    """Load a batch the way the published loaders do; ``.npz`` files give the same dict."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            out: dict[str, Any] = {"data": z["data"], "labels": z["labels"].tolist()}
            if "mean" in z.files:
                out["mean"] = z["mean"]
        return out
    with open(path, "rb") as fh:
        return pickle.load(fh)
