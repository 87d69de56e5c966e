"""Build ImageNet16x16 / 32x32 / 64x64 in the published batch format, resumably, in bounded memory.

Two passes over a work file, so that every batch is written once, complete, with its mean:

1. **Resize.** The train shuffle is a seeded permutation of the sorted file list, decided up
   front; row *i* of the work file ``.downsample-work/train.u8`` is the *i*-th image of the
   shuffled order (val keeps its file-name order). Chunks of consecutive rows go to the
   executor; each returns a uint8 block, which the parent writes at its offset and adds to
   the integer per-pixel sums. An unreadable file (or one declaring more than ``max_pixels``)
   leaves a zero row and is listed. Finished chunks are recorded in ``progress.jsonl`` with the
   CRC-32 of their rows after the work file is fsynced, so an interrupted run redoes at most the
   chunks in flight; on resume every recorded chunk is read back and checked against its CRC (a
   truncated or overwritten work file, a record of the wrong shape: that chunk is redone, never
   trusted as zeros).
2. **Write.** With the failures known, the valid rows are cut into batches (1–9: n // 10
   rows, 10: the rest), each read back from the work file and written atomically with the
   exact mean (int64 sums / n, float64). Each written batch is recorded with its byte length;
   a rerun rewrites one whose length differs. Then ``downsample.json`` and the work folder goes.

One run per output folder at a time (:func:`methbuild.io.lock.folder_lock`). A full disk is an
``OSError`` (ENOSPC) that the CLI reports as one line, exit 1; the state on disk is then resumable.

Memory: the parent holds one batch while writing it, plus the chunks in flight; workers hold
one chunk. Disk: the work file is as large as the output, until the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from methbuild import __version__
from methbuild.downsample.resize import DEFAULT_DRAFT, DEFAULT_MAX_PIXELS, METHODS, SIZES, Chunk, downsample_chunk
from methbuild.downsample.source import Source, SplitFiles, scan
from methbuild.errors import UserError
from methbuild.executor import default_workers, iter_tasks
from methbuild.io.atomic import atomic_write_text, clean_stale_temps, ensure_writable_dir
from methbuild.io.lock import folder_lock
from methbuild.io.tables import table_text
from methbuild.io.imagenet_batches import (FORMATS, TRAIN_STEMS, VAL_STEM, all_file_names, file_name,
                                           train_batch_bounds, write_batch)

WORK_DIR = ".downsample-work"
SUMMARY = "downsample.json"
SHUFFLE_KEY = 7  # spawn key of the train shuffle under the user's seed
FLUSH_SECONDS = 1.0  # finished chunks are made durable (fsync + log) at most this far apart


class IncompleteRun(RuntimeError):
    """Some tasks failed as a whole (not single bad images); a rerun resumes and retries them."""


@dataclass(frozen=True)
class Options:
    src: Path
    out: Path
    size: int = 32
    method: str = "box"
    fmt: str = "pickle"
    seed: int = 0
    workers: int | None = None
    exact: bool = False
    draft: int = DEFAULT_DRAFT
    synsets: Path | None = None
    chunk_size: int | None = None  # images per task; default from the dataset size
    progress: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS


def train_order(n: int, seed: int) -> np.ndarray:
    """Row i of the output holds sorted-train-file ``order[i]``; depends on (n, seed) only."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SHUFFLE_KEY,)))
    return rng.permutation(n)


def default_chunk_size(n: int, workers: int) -> int:
    """A few hundred images per task at scale; small enough for ≥ 16 tasks per worker on small sets."""
    return int(min(256, max(16, -(-n // (workers * 16)))))


class _WorkFile:
    """The rows of one split in a flat uint8 file, written and read at row offsets (no mmap, so
    the resident memory is what we read, not what the page cache holds)."""

    def __init__(self, path: Path, rows: int, row_len: int) -> None:
        self.path, self.rows, self.row_len = path, rows, row_len
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self.fd).st_size != rows * row_len:
            os.ftruncate(self.fd, rows * row_len)  # sparse until written

    def write(self, start: int, block: np.ndarray) -> None:
        view = memoryview(np.ascontiguousarray(block)).cast("B")
        offset = start * self.row_len
        while view:
            n = os.pwrite(self.fd, view, offset)
            view, offset = view[n:], offset + n

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, self.row_len), dtype=np.uint8)
        view = memoryview(out).cast("B") if out.size else memoryview(b"")
        offset = start * self.row_len
        while view:
            n = os.preadv(self.fd, [view], offset)
            if n == 0:
                raise OSError(f"{self.path} is shorter than expected")
            view, offset = view[n:], offset + n
        return out

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def rows_crc(block: np.ndarray) -> int:
    """CRC-32 of a block of work-file rows: what a chunk's record promises the work file holds."""
    return zlib.crc32(memoryview(np.ascontiguousarray(block)).cast("B"))


def _chunk_record(rec) -> bool:
    """A chunk record of the right shape (the rows are checked against its ``crc`` separately)."""
    try:
        return (isinstance(rec["split"], str) and type(rec["chunk"]) is int and rec["chunk"] >= 0
                and type(rec["crc"]) is int and isinstance(rec["kinds"], dict)
                and all(isinstance(k, str) and type(v) is int for k, v in rec["kinds"].items())
                and isinstance(rec["failed"], list)
                and all(isinstance(f, list) and len(f) == 2 and type(f[0]) is int and f[0] >= 0
                        and isinstance(f[1], str) for f in rec["failed"]))
    except (KeyError, TypeError):
        return False


class _Progress:
    """``progress.jsonl``: one line per durable event (chunk done, file written). A torn last
    line from a killed run, and any line of the wrong shape, is ignored: what it described is redone."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.chunks: dict[tuple[str, int], dict] = {}
        self.written: dict[str, int] = {}  # file name -> its length when written
        if path.exists():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                except (json.JSONDecodeError, RecursionError):
                    continue
                if not isinstance(rec, dict):
                    continue
                if "chunk" in rec:
                    if _chunk_record(rec):
                        self.chunks[(rec["split"], rec["chunk"])] = rec
                elif isinstance(rec.get("written"), str) and type(rec.get("bytes")) is int:
                    self.written[rec["written"]] = rec["bytes"]

    def is_written(self, path: Path) -> bool:
        """``path`` was written by this run's config and still has the length it was written with."""
        try:
            return self.written.get(path.name) == path.stat().st_size
        except OSError:
            return False

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        for rec in records:
            if "chunk" in rec:
                self.chunks[(rec["split"], rec["chunk"])] = rec
            else:
                self.written[rec["written"]] = rec["bytes"]


def _config(opts: Options, source: Source, chunk_size: int) -> dict:
    """Everything the pixels and the row order depend on; a resumed run must match it."""
    return {
        "size": opts.size, "method": opts.method, "exact": opts.exact, "draft": None if opts.exact else opts.draft,
        "seed": opts.seed, "chunk_size": chunk_size, "max_pixels": opts.max_pixels,
        "train": {"n": len(source.train), "digest": source.train.digest()},
        "val": None if source.val is None else {"n": len(source.val), "digest": source.val.digest()},
    }


def _validate(opts: Options) -> None:
    if opts.size not in SIZES:
        raise UserError(f"--size must be one of {', '.join(map(str, SIZES))}, not {opts.size}")
    if opts.method not in METHODS:
        raise UserError(f"unknown method {opts.method!r}; choose from {', '.join(METHODS)}")
    if opts.fmt not in FORMATS:
        raise UserError(f"unknown format {opts.fmt!r}; choose from {', '.join(FORMATS)}")
    if opts.draft < 1:
        raise UserError("--draft must be at least 1")
    if opts.max_pixels < 1:
        raise UserError("--max-pixels must be at least 1")


def _read_json(path: Path) -> dict:
    """A JSON object from ``path``; an empty dict when it is missing, unreadable, or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _summary_check(summary: dict) -> str:
    """sha256 of ``downsample.json`` without its ``check``: a summary that was edited is not trusted as
    proof that the output is complete (the set is rebuilt)."""
    import hashlib

    body = {k: v for k, v in summary.items() if k not in ("check", "already_complete")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.2f} MB"


def _check_space(out: Path, need: int) -> None:
    free = shutil.disk_usage(out).free
    if need > free:
        raise UserError(f"{out} needs about {_gb(need)} free (work file + batches) but has {_gb(free)}")


@dataclass
class _SplitState:
    """Pass-1 bookkeeping of one split."""

    files: SplitFiles
    order: np.ndarray  # output row -> index into files
    work: _WorkFile
    sums: np.ndarray  # int64 per-pixel sums of the good rows (failed rows are zeros)
    failures: list[tuple[int, str, str]]  # (row, file, error)
    kinds: Counter
    cpu_seconds: float = 0.0  # of the workers, this run


def _resize(states: list[_SplitState], opts: Options, chunk_size: int, progress: _Progress,
            workers: int) -> tuple[int, float | None]:
    """Pass 1 over every split in one pool (a pool start costs ~0.5 s; one is enough).

    Returns the images resized by this run and the steady-state rate, images/s after the first
    chunk came back (pool start-up excluded; None with fewer than two chunks to run)."""
    done_rows = 0
    by_name = {st.files.name: st for st in states}

    def record(st: _SplitState, start: int, failed: list, kinds: dict) -> None:
        st.failures.extend((start + i, st.files.paths[st.order[start + i]], err) for i, err in failed)
        st.kinds.update(kinds)

    todo_index: list[tuple[_SplitState, int, int, int]] = []  # (split, chunk, start, stop)
    redone = 0
    for st in states:
        n = len(st.files)
        for c, start in enumerate(range(0, n, chunk_size)):
            stop = min(n, start + chunk_size)
            rec = progress.chunks.get((st.files.name, c))
            if rec is not None:  # resumed: the rows are on disk; re-read them for the sums, and check them
                rows = st.work.read(start, stop)
                if rows_crc(rows) == rec["crc"] and all(i < stop - start for i, _ in rec["failed"]):
                    st.sums += rows.sum(axis=0, dtype=np.int64)
                    record(st, start, rec["failed"], rec["kinds"])
                    done_rows += stop - start
                    continue
                redone += 1  # the work file does not hold what the record says: never trusted, redone
            todo_index.append((st, c, start, stop))

    def todo():  # built as the pool asks for work: paths of 1.3M files are never all held at once
        for st, c, start, stop in todo_index:
            paths = tuple(str(opts.src / st.files.paths[f]) for f in st.order[start:stop])
            yield Chunk(st.files.name, c, start, paths, opts.size, opts.method, opts.exact, opts.draft,
                        opts.max_pixels)

    total = sum(len(st.files) for st in states)
    if done_rows and opts.progress:
        tqdm.write(f"resuming: {done_rows:,} of {total:,} images already resized", file=sys.stderr)
    if redone and opts.progress:
        tqdm.write(f"resuming: {redone} chunk(s) of the work file do not match their record: redoing them",
                   file=sys.stderr)
    pending: list[dict] = []
    last_flush = float("-inf")  # the first finished chunk is made durable at once
    errors: list[str] = []

    def flush() -> None:
        nonlocal pending, last_flush
        for st in states:
            st.work.sync()
        progress.append(pending)
        pending, last_flush = [], time.monotonic()

    t_first, after_first = None, 0
    try:
        with tqdm(total=total, initial=done_rows, desc=f"resize {opts.size}x{opts.size}", unit="img",
                  disable=not opts.progress or None, dynamic_ncols=True, smoothing=0.05) as bar:
            for res in iter_tasks(downsample_chunk, todo(), workers=workers):
                chunk: Chunk = res.item
                bar.update(len(chunk.paths))
                if t_first is None:
                    t_first = time.monotonic()
                else:
                    after_first += len(chunk.paths)
                if not res.ok:  # the whole task died (not one bad image): retried by the next run
                    errors.append(f"{chunk.split} chunk {chunk.index}: {res.error}")
                    continue
                st, value = by_name[chunk.split], res.value
                st.work.write(chunk.start, value["block"])
                st.sums += value["block"].sum(axis=0, dtype=np.int64)
                st.cpu_seconds += value["cpu_seconds"]
                record(st, chunk.start, value["failed"], value["kinds"])
                pending.append({"split": chunk.split, "chunk": chunk.index, "failed": value["failed"],
                                "kinds": value["kinds"], "crc": rows_crc(value["block"])})
                if time.monotonic() - last_flush > FLUSH_SECONDS:
                    flush()
        t_end = time.monotonic()
    finally:  # also on Ctrl-C: chunks whose rows are written are kept for the next run
        flush()
    if errors:
        raise IncompleteRun(f"{len(errors)} task(s) failed, rerun the same command to retry them; "
                            f"first: {errors[0]}")
    for st in states:
        st.failures.sort()
    steady = after_first / (t_end - t_first) if after_first and t_end > t_first else None
    return total - done_rows, steady


def _write_split(stems_bounds: list[tuple[str, int, int]], good: np.ndarray, labels: np.ndarray, work: _WorkFile,
                 mean: np.ndarray | None, opts: Options, progress: _Progress) -> None:
    """Pass 2: write each batch from the good rows ``good[a:b]`` (row indices into the work file)."""
    for stem, a, b in stems_bounds:
        name = file_name(stem, opts.fmt)
        if progress.is_written(opts.out / name):
            continue
        rows = good[a:b]
        if len(rows) and rows[-1] - rows[0] == len(rows) - 1:  # no failed row inside: one contiguous read
            data = work.read(int(rows[0]), int(rows[-1]) + 1)
        else:
            lo = int(rows[0]) if len(rows) else 0
            hi = int(rows[-1]) + 1 if len(rows) else 0
            data = work.read(lo, hi)[rows - lo]
        write_batch(opts.out / name, data, labels[rows].tolist(), mean, fmt=opts.fmt)
        del data
        progress.append([{"written": name, "bytes": (opts.out / name).stat().st_size}])


def build(opts: Options) -> dict:
    """Build the dataset into ``opts.out``; returns the summary (also written to downsample.json).

    One run per output folder at a time: a second gets a :class:`UserError` naming the first."""
    t0 = time.monotonic()
    _validate(opts)
    source = scan(opts.src, opts.synsets)
    out = ensure_writable_dir(opts.out, "output folder")
    opts = Options(**{**asdict(opts), "out": out, "src": Path(opts.src)})
    with folder_lock(out):
        return _build_locked(opts, source, out, t0)


def _build_locked(opts: Options, source: Source, out: Path, t0: float) -> dict:
    workers = opts.workers or default_workers()
    work_dir = out / WORK_DIR
    cfg_path = work_dir / "config.json"

    # A previous run with the same config and the same files: nothing to do.
    n_total = len(source.train) + (len(source.val) if source.val else 0)
    chunk_size = opts.chunk_size or default_chunk_size(n_total, workers)
    if work_dir.exists() and cfg_path.exists() and not opts.chunk_size:  # resuming keeps the first run's chunking
        old_chunk = _read_json(cfg_path).get("chunk_size")
        if type(old_chunk) is int and old_chunk >= 1:  # anything else: a damaged config, the run starts over
            chunk_size = old_chunk
    cfg = _config(opts, source, chunk_size)
    names = all_file_names(opts.fmt) if source.val is not None else [file_name(s, opts.fmt) for s in TRAIN_STEMS]
    summary_path = out / SUMMARY
    if summary_path.exists() and not work_dir.exists():
        old = _read_json(summary_path)
        if (old.get("check") == _summary_check(old) and isinstance(old.get("config"), dict)
                and {k: v for k, v in old["config"].items() if k != "chunk_size"}
                == {k: v for k, v in cfg.items() if k != "chunk_size"}
                and old.get("format") == opts.fmt and all((out / f).is_file() for f in names)
                and sum((out / f).stat().st_size for f in names) == old.get("bytes")):
            old["already_complete"] = True
            return old
    if summary_path.exists():
        summary_path.unlink()  # from another config: stale until this run ends

    # The work folder: reuse it if it belongs to the same config, else start over.
    resumed = False
    if work_dir.exists():
        old_cfg = None
        with contextlib.suppress(ValueError, OSError):
            old_cfg = json.loads(cfg_path.read_text())
        if old_cfg == cfg:
            resumed = True
        else:
            shutil.rmtree(work_dir)
    work_dir.mkdir(exist_ok=True)
    clean_stale_temps(out)
    if not resumed:
        atomic_write_text(cfg_path, json.dumps(cfg, indent=1))
    row_len = 3 * opts.size * opts.size

    existing = sum(f.stat().st_size for f in work_dir.glob("*.u8")) if resumed else 0
    _check_space(out, 2 * n_total * row_len - existing)
    progress = _Progress(work_dir / "progress.jsonl")
    if opts.progress:  # after every check: a user error stays one line
        tqdm.write(f"source: {len(source.train):,} train files in {len(source.classes):,} classes"
                   + (f", {len(source.val):,} val files" if source.val is not None else ", no val/"), file=sys.stderr)

    splits = [(source.train, train_order(len(source.train), opts.seed))]
    if source.val is not None:
        splits.append((source.val, np.arange(len(source.val))))
    states = [_SplitState(files, order, _WorkFile(work_dir / f"{files.name}.u8", len(files), row_len),
                          np.zeros(row_len, dtype=np.int64), [], Counter()) for files, order in splits]
    report: dict = {}
    mean = None
    try:
        t_resize = time.monotonic()
        resized, steady = _resize(states, opts, chunk_size, progress, workers)
        resize_seconds = time.monotonic() - t_resize
        for st in states:
            failed_rows = {r for r, _, _ in st.failures}
            good = np.array([r for r in range(len(st.files)) if r not in failed_rows], dtype=np.int64)
            labels = np.asarray(st.files.labels, dtype=np.int64)[st.order]
            entry = {"images": int(len(good)), "files": len(st.files), "skipped": len(st.failures)}
            if st.files.name == "train":
                if not len(good):
                    raise UserError("no train image could be read; see downsample's error list")
                mean = st.sums.astype(np.float64) / len(good)
                bounds = train_batch_bounds(len(good))
                _write_split([(stem, a, b) for stem, (a, b) in zip(TRAIN_STEMS, bounds)], good, labels, st.work,
                             mean, opts, progress)
                entry["batch_rows"] = [b - a for a, b in bounds]
            else:
                _write_split([(VAL_STEM, 0, len(good))], good, labels, st.work, None, opts, progress)
            report[st.files.name] = entry
    finally:  # a full disk (ENOSPC) goes up as it is: the CLI makes it one line and exit 1, and a rerun resumes
        for st in states:
            st.work.close()
    kinds: Counter[str] = sum((st.kinds for st in states), Counter())
    # as text: a file name that is not UTF-8 keeps its bytes as \xNN escapes
    all_failures = [{"split": st.files.name, "file": table_text(f), "error": table_text(e)}
                    for st in states for _, f, e in st.failures]

    seconds = time.monotonic() - t0
    summary = {
        "tool": f"methbuild {__version__}",
        "config": cfg,
        "format": opts.fmt,
        "files": names,
        "classes": len(source.classes),
        "labels": "1-based, " + ("from the synsets file" if opts.synsets else "sorted wnids"),
        "splits": report,
        "kinds": dict(sorted(kinds.items())),
        "mean_rgb": [round(float(mean[c * opts.size ** 2:(c + 1) * opts.size ** 2].mean()), 4) for c in range(3)],
        "skipped": all_failures,
        "resumed": resumed,
        "workers": workers,
        "seconds": round(seconds, 2),
        "resize_seconds": round(resize_seconds, 2),
        "images_resized": resized,
        "images_per_second": round(resized / resize_seconds, 1) if resize_seconds > 0 else None,
        "steady_images_per_second": round(steady, 1) if steady else None,
        "worker_cpu_seconds": round(sum(st.cpu_seconds for st in states), 3),
        "bytes": sum((out / f).stat().st_size for f in names),
    }
    summary["check"] = _summary_check(summary)
    atomic_write_text(summary_path, json.dumps(summary, indent=1))
    shutil.rmtree(work_dir)
    summary["already_complete"] = False
    return summary
