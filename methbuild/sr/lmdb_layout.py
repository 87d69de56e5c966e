"""BasicSR's LMDB layout (``basicsr/utils/lmdb_util.py``), written in bounded batches.

``<name>.lmdb/`` holds LMDB's ``data.mdb`` and ``lock.mdb`` and a ``meta_info.txt`` with one line per
image, ``<key>.png (h,w,c) <level>``. The key is the file name without its extension (ASCII), the
value the image encoded as PNG at ``level`` (BasicSR: OpenCV at compression 1; here
:func:`methbuild.sr.png.encode_png`, ISA-L). BasicSR's paired reader takes a key as the text of a
meta line before its first dot, so keys with a dot, a space or non-ASCII characters are refused.

BasicSR's script commits every 5,000 images and its ``multiprocessing_read`` reads the whole set into
RAM first (OOM kills: BasicSR#57, #125). Here images are encoded by the process pool with a bound on
the tasks in flight (workers + 1 encoded images), and the writer commits whenever the values it
holds reach ``batch_bytes`` (128 MB): what it holds is that batch plus LMDB's dirty pages of the same
batch, whatever the set's size (measured: peak RSS ≈ 50 MB + 2 × the batch, benchmarks/bench_sr.py). The map starts at 1.25 × the input files' size and doubles on ``MDB_MAP_FULL`` (the batch is
put again into the grown map). ``meta_info.txt`` is written last, sorted by key, and removed first
on a rerun, so a folder with a ``meta_info.txt`` holds a whole set.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from methbuild.errors import UserError
from methbuild.executor import default_workers, iter_tasks
from methbuild.io.atomic import atomic_write_text
from methbuild.sr._common import GT_DIR, LR_DIR, META_INFO, SrFailures, SrReport, png_files, short_reason
from methbuild.sr.png import encode_png

LEVEL = 1  # BasicSR's compress_level
BATCH_BYTES = 128 << 20
MIN_MAP = 64 << 20
_KEY = re.compile(r"^[\x21-\x7e]+$")


def _lmdb():
    try:
        import lmdb
    except ImportError:
        raise UserError("sr lmdb needs the lmdb package: pip install 'methbuild[sr]'") from None
    return lmdb


class LmdbWriter:
    """Puts ``(key, value)`` into an LMDB at ``path`` a batch at a time; grows the map when it is full."""

    def __init__(self, path: str | os.PathLike, map_size: int, batch_bytes: int = BATCH_BYTES) -> None:
        self.lmdb = _lmdb()
        self.env = self.lmdb.open(str(path), map_size=max(int(map_size), 1 << 16), subdir=True, meminit=False)
        self.batch_bytes = batch_bytes
        self.pending: list[tuple[bytes, bytes]] = []
        self.pending_bytes = 0
        self.grown = 0

    def put(self, key: bytes, value: bytes) -> None:
        self.pending.append((key, value))
        self.pending_bytes += len(value) + len(key)
        if self.pending_bytes >= self.batch_bytes:
            self.flush()

    def flush(self) -> None:
        while self.pending:
            try:
                with self.env.begin(write=True) as txn:  # committed on leaving, aborted on an exception
                    for key, value in self.pending:
                        txn.put(key, value)
            except self.lmdb.MapFullError:
                # no transaction is open now: the map may be resized, and the batch put again
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
                self.grown += 1
                continue
            self.pending, self.pending_bytes = [], 0

    def close(self) -> None:
        self.flush()
        self.env.sync(True)
        self.env.close()


@dataclass(frozen=True)
class EncodeTask:
    path: str
    key: str
    level: int


def encode_image(task: EncodeTask) -> tuple[str, bytes, tuple[int, int, int]]:
    """(key, PNG bytes at the task's level, (h, w, c)) of one image file."""
    import pyvips

    pyvips.cache_set_max(0)
    try:
        image = pyvips.Image.new_from_file(task.path, access="sequential", fail_on="error")
        if image.format != "uchar" or image.bands not in (1, 3):
            raise ValueError(f"LMDB values are 8-bit grey or RGB PNGs, not {image.bands} band(s) of {image.format}")
        pixels = image.numpy().reshape(image.height, image.width, image.bands)
    except pyvips.Error as exc:
        raise ValueError(f"cannot decode {task.path}: {' '.join(str(exc).split())}") from None
    return task.key, encode_png(pixels, task.level), pixels.shape


def check_keys(files: Sequence[Path]) -> list[str]:
    """The LMDB keys of ``files`` (their stems); a UserError for one BasicSR's reader would misread."""
    keys = []
    for p in files:
        key = p.stem
        if not _KEY.match(key) or "." in key:
            raise UserError(f"{p.name!r}: LMDB keys are file names without extension, printable ASCII without "
                            "spaces or dots (BasicSR reads a key up to its first dot); rename the file")
        keys.append(key)
    return keys


def check_job(folder: str | os.PathLike, out: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """(PNG files, their keys) of ``folder`` for the LMDB ``out``; a UserError for anything BasicSR could not read."""
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise UserError(f"{str(folder)!r} is not a folder")
    if not out.name.endswith(".lmdb"):
        raise UserError(f"--out {str(out)!r} must end in .lmdb (BasicSR's readers require it)")
    files = png_files(folder)
    if not files:
        raise UserError(f"no .png files in {str(folder)!r}")
    return files, check_keys(files)


def write_lmdb(folder: str | os.PathLike, out: str | os.PathLike, *, level: int = LEVEL,
               batch_bytes: int = BATCH_BYTES, map_size: int | None = None, workers: int | None = None,
               strict: bool = False, progress: bool = True) -> SrReport:
    """Write the PNGs of ``folder`` into the LMDB ``out`` (a folder whose name ends in ``.lmdb``)."""
    started = time.perf_counter()
    if not 0 <= level <= 9:
        raise UserError(f"--level must be 0..9 (got {level})")
    files, keys = check_job(folder, out)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in (META_INFO, "data.mdb", "lock.mdb"):  # the meta first: a folder with one holds a whole set
        (out / name).unlink(missing_ok=True)
    if map_size is None:
        map_size = max(MIN_MAP, int(1.25 * sum(p.stat().st_size for p in files)))
    tasks = [EncodeTask(str(p), k, level) for p, k in zip(files, keys)]
    workers = min(workers or default_workers(), len(tasks))
    writer = LmdbWriter(out, map_size, batch_bytes)
    report = SrReport()
    meta: list[tuple[str, str]] = []
    from tqdm import tqdm

    try:
        with tqdm(total=len(tasks), desc=f"sr lmdb {out.name}", unit="img", disable=not progress or None,
                  dynamic_ncols=True) as bar:
            # few tasks in flight: each result is a whole encoded image held until it is put
            for res in iter_tasks(encode_image, tasks, workers=workers, max_in_flight=workers + 1):
                bar.update(1)
                if not res.ok:
                    report.failed += 1
                    report.failures.append((res.item.path, short_reason(res.error)))
                    continue
                key, value, (h, w, c) = res.value
                writer.put(key.encode("ascii"), value)
                meta.append((key, f"{key}.png ({h},{w},{c}) {level}\n"))
                report.done += 1
    finally:
        writer.close()
    atomic_write_text(out / META_INFO, "".join(line for _, line in sorted(meta)))
    report.extra.update(out=str(out), grown=writer.grown, bytes=(out / "data.mdb").stat().st_size)
    report.seconds = time.perf_counter() - started
    if strict and report.failed:
        raise SrFailures(report)
    return report


def lmdb_jobs(root: str | os.PathLike, out: str | os.PathLike | None) -> list[tuple[Path, Path]]:
    """``[(image folder, LMDB folder)]`` for ``sr lmdb ROOT``: a paired folder gives one LMDB per layout
    folder (``GT``, ``LRbicx<s>``, their ``_sub``) under ``out`` (default ROOT); a folder of PNGs one LMDB,
    ``out`` or ``ROOT.lmdb`` beside it."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{str(root)!r} is not a folder")
    layout = [p for p in sorted(root.iterdir())
              if p.is_dir() and (p.name in (GT_DIR, f"{GT_DIR}_sub") or LR_DIR.match(p.name.removesuffix("_sub")))]
    if (root / GT_DIR).is_dir() and layout:
        base = Path(out) if out is not None else root
        return [(p, base / f"{p.name}.lmdb") for p in layout]
    return [(root, Path(out) if out is not None else root.parent / f"{root.name}.lmdb")]
