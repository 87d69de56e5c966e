"""Bicubic low-resolution copies of high-resolution images (the MetH-SR test set, SPEC §3).

The convention of the super-resolution community is MATLAB ``imresize`` bicubic: Keys' cubic
with a = −0.5, the kernel widened by the scale when shrinking (antialiasing), in floating point.
libvips' ``reduce`` with ``kernel="cubic"`` is that kernel (Catmull-Rom = Keys a = −0.5),
antialiased, centre-aligned, ≥ 55 dB PSNR from a float64 port of ``imresize``; ``resize`` and its
default ``gap`` (a box pre-shrink) drift to 48–50 dB, so we call ``reduce`` with ``gap=0``.
``reduce`` extends the image edge by copying; ``imresize`` mirrors it (edge pixel repeated), which
gains ~2 dB on high-frequency content, so the HR is read into a buffer with a mirrored border (a
multiple of every scale, so each LR grid is the image's) and reduced from there: bit-identical to
reducing the whole mirrored image.

Per HR image (:func:`stream_pyramid`): EXIF orientation applied, alpha dropped, CMYK and 16-bit
converted to 8-bit sRGB / grey, cropped top-left to multiples of ``crop_multiple`` so each LR copy
is exactly HR/s. One thread decodes it band by band into the mirrored buffer (once, never the
whole file at a time in libvips); one thread per scale reduces the rows already decoded and
streams them into ``out/X<s>/<stem>.png`` (lossless, 8-bit), so decoding, reducing and PNG
encoding overlap. The HR original is never re-encoded.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import hashlib
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from methbuild.errors import UserError
from methbuild.io.meth_csv import resolve_image_file
from methbuild.executor import default_workers, run_tasks
from methbuild.io.atomic import clean_stale_temps, ensure_writable_dir
from methbuild.io.imageinfo import DEFAULT_MAX_PIXELS
from methbuild.io.lock import folder_lock
from methbuild.io.lowres_png import PngStream, png_size
from methbuild.io.tables import table_text

SCALES = (2, 4, 8, 16)
CROP_MULTIPLE = 16
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".jp2", ".j2k", ".gif", ".bmp"}
CSV_NAME = "lowres.csv"
IMAGE_FILE_COLUMN = "Image file"
# OSError numbers that say the machine failed, not the image: a run with any of them exits non-zero.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM, errno.ENFILE,
                                errno.EMFILE, errno.ESTALE})


# --------------------------------------------------------------------------- one image, in memory


def _vips():
    """Import pyvips on first use: the CLI's help and the table code must not pay for libvips."""
    import pyvips

    return pyvips


def _has_alpha(image) -> bool:
    bands, interp = image.bands, image.interpretation
    if interp == "cmyk":
        return bands == 5
    return bands in (2, 4) or bands > 4


def prepare(image) -> tuple[object, list[str]]:
    """The 8-bit image we take as HR, and notes on what was changed to get it.

    EXIF orientation applied; alpha dropped (colour values kept, not flattened); CMYK to sRGB
    through the embedded profile (or libvips' built-in CMYK profile); 16-bit to 8-bit, rounded;
    any other space (Lab, float, …) to 8-bit sRGB. Grey stays grey and RGB stays RGB.
    Lazy and idempotent: nothing is computed until pixels are read, and a prepared image
    comes back unchanged.
    """
    notes: list[str] = []
    try:
        orientation = int(image.get("orientation")) if image.get_typeof("orientation") else 1
    except Exception:  # a malformed tag: treat as upright
        orientation = 1
    if orientation not in (0, 1):
        image = image.autorot()
        notes.append(f"EXIF orientation {orientation} applied")
    if _has_alpha(image):
        image = image.extract_band(0, n=image.bands - 1)
        notes.append("alpha dropped")
    interp, fmt = image.interpretation, image.format
    if interp == "cmyk":
        image = image.icc_transform("srgb", embedded=True, input_profile="cmyk", intent="relative")
        image = image.cast("uchar")
        notes.append("CMYK converted to 8-bit sRGB")
    elif fmt == "ushort" and interp not in ("lab", "labs", "lch", "cmc", "xyz", "yxy", "hsv", "scrgb"):
        # 0..65535 -> 0..255 rounded (libvips' own conversion truncates: a bias of half a level)
        grey = image.bands == 1
        image = (image * (255.0 / 65535.0)).rint().cast("uchar")
        image = image.copy(interpretation="b-w" if grey else "srgb")
        notes.append(f"16-bit converted to 8-bit {'grey' if grey else 'sRGB'}")
    elif fmt != "uchar" or image.bands not in (1, 3):
        target = "b-w" if image.bands == 1 else "srgb"
        image = image.colourspace(target).cast("uchar")
        notes.append(f"{interp} {fmt} converted to 8-bit {'grey' if target == 'b-w' else 'sRGB'}")
    if image.bands not in (1, 3):  # e.g. a 2-band image without alpha semantics
        image = image.extract_band(0) if image.bands < 3 else image.extract_band(0, n=3)
        notes.append("extra bands dropped")
    return image, notes


def crop_box(width: int, height: int, crop_multiple: int = CROP_MULTIPLE) -> tuple[int, int, int, int]:
    """(left, top, width, height): the largest top-left anchored box with sides divisible by ``crop_multiple``."""
    return 0, 0, width - width % crop_multiple, height - height % crop_multiple


def check_scales(scales: Sequence[int], crop_multiple: int) -> tuple[int, ...]:
    """Validated scales (sorted, unique); a :class:`UserError` names the bad one."""
    if crop_multiple < 1:
        raise UserError(f"--crop-multiple must be at least 1 (got {crop_multiple})")
    if not scales:
        raise UserError("give at least one scale")
    for s in scales:
        if int(s) != s or s < 2:
            raise UserError(f"scale {s} is not an integer of at least 2")
        if crop_multiple % s:
            raise UserError(f"scale {s} does not divide --crop-multiple {crop_multiple}, "
                            "so the LR copy could not be exactly HR/s; pick scales that divide it")
    return tuple(sorted({int(s) for s in scales}))


def _padded_reduce(image, scale: int, pad: int | None = None):
    """Reduce through a mirrored border (edge pixel repeated, as imresize), the whole image at once.

    The reference for :func:`stream_pyramid` and the path for images too small to stream. The
    padded image is materialised first: ``reduce`` then reads memory directly instead of pulling
    every input line through ``embed`` several times (4–8× slower at ×16).
    """
    pad = 3 * scale if pad is None else pad  # > the kernel's reach of 2·scale; a multiple of scale
    big = image.embed(pad, pad, image.width + 2 * pad, image.height + 2 * pad, extend="mirror").copy_memory()
    off = pad // scale
    return big.reduce(scale, scale, kernel="cubic", gap=0.0).crop(off, off, image.width // scale,
                                                                  image.height // scale)


BAND_ROWS = 256  # HR rows decoded per step
CHUNK_ROWS = 512  # HR rows' worth of LR rows produced per step of each scale
MIN_CHUNK_LR_ROWS = 64
CONTEXT = 3  # mirrored border, in units of the largest scale: more than the cubic's reach of 2·scale


class _BufferStore:
    """One reusable HR buffer per process: a worker's images reuse the memory of the last one
    instead of faulting in tens of megabytes of fresh pages per image (~20% of a decode). Kept
    only up to ``KEEP_BYTES``; a buffer in use by another thread is not shared (a new one is made)."""

    KEEP_BYTES = 256 << 20

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._free = None

    def take(self, shape: tuple[int, ...]):
        import numpy as np

        n = math.prod(shape)
        with self._lock:
            flat, self._free = self._free, None
        if flat is None or flat.size < n:
            flat = np.empty(n, np.uint8)
        return flat[:n].reshape(shape)

    def give(self, array) -> None:
        flat = array.base if array.base is not None else array
        if flat.size <= self.KEEP_BYTES:
            with self._lock:
                if self._free is None or self._free.size < flat.size:
                    self._free = flat


_BUFFERS = _BufferStore()


class _MirroredHR:
    """The HR image decoded into memory with a mirrored border (edge pixel repeated, as imresize),
    filled band by band so that reading can start before decoding ends.

    ``fill()`` decodes ``hr`` top to bottom, a band at a time (each band its own small pipeline
    over the sequentially opened file: it is decoded exactly once), copies it in and mirrors its
    ends left and right; the rows above the image are mirrored once the first rows are in, the
    rows below at the end. ``ready`` counts the buffer rows that are final, ``wait(n)`` blocks
    until the first ``n`` are. ``image`` is a libvips image over the buffer (no copy): an
    operation may read any rows below ``ready``.
    """

    def __init__(self, hr, pad: int, band_rows: int = BAND_ROWS) -> None:
        import threading

        self.hr, self.pad, self.band_rows = hr, pad, max(band_rows, pad)
        self.width, self.height, self.bands = hr.width, hr.height, hr.bands
        self.buffer = _BUFFERS.take((self.height + 2 * pad, self.width + 2 * pad, self.bands))
        self.image = _vips().Image.new_from_memory(self.buffer, self.width + 2 * pad, self.height + 2 * pad,
                                                   self.bands, "uchar")
        self.ready = 0
        self.error: BaseException | None = None
        self.stopped = False
        self._cond = threading.Condition()

    def _publish(self, ready: int) -> None:
        with self._cond:
            self.ready = ready
            self._cond.notify_all()

    def fill(self) -> None:
        import numpy as np

        p, w, h, buf = self.pad, self.width, self.height, self.buffer
        try:
            for top in range(0, h, self.band_rows):
                if self.stopped:
                    return
                n = min(self.band_rows, h - top)
                # each band is its own small pipeline over the sequentially opened file: decoded once
                band = np.frombuffer(self.hr.crop(0, top, w, n).write_to_memory(), np.uint8)
                rows = buf[p + top: p + top + n]
                rows[:, p: p + w] = band.reshape(n, w, self.bands)
                rows[:, :p] = rows[:, p: 2 * p][:, ::-1]  # column -1 is column 0, -2 is 1, ...
                rows[:, p + w:] = rows[:, w: p + w][:, ::-1]  # column w is column w - 1, ...
                if top + n >= p and top < p:  # the first p rows are in: mirror them above the image
                    buf[:p] = buf[p: 2 * p][::-1]
                if top + n == h:  # the last rows: mirror them below
                    buf[p + h:] = buf[h: p + h][::-1]
                self._publish(p + top + n if top + n >= p else 0)
            self._publish(h + 2 * p)
        except BaseException as exc:
            with self._cond:
                self.error = exc
                self._cond.notify_all()
            raise

    def wait(self, rows: int) -> None:
        with self._cond:
            while self.ready < rows and self.error is None:
                self._cond.wait()
            if self.error is not None and self.ready < rows:
                raise self.error

    def stop(self) -> None:
        """End the decoding after its current band and wake every ``wait`` (it raises)."""
        with self._cond:
            self.stopped = True
            self.error = self.error or RuntimeError("stopped")
            self._cond.notify_all()


def stream_pyramid(hr, scales: Sequence[int], sink, *, chunk_rows: int = CHUNK_ROWS,
                   band_rows: int = BAND_ROWS, threaded: bool = True) -> None:
    """Make the LR images of ``hr`` (8-bit, sides divisible by every scale) and hand them to
    ``sink(scale, rows)`` a block of rows at a time, top to bottom (H × W × bands uint8 arrays).

    Each scale is ``reduce(kernel="cubic", gap=0)`` of the image with imresize's mirrored border,
    the border a multiple of the scale so the LR grid is the image's: bit-identical to
    :func:`_padded_reduce`. ``hr`` is decoded once into a :class:`_MirroredHR`; with ``threaded``
    the decoding runs in its own thread and every scale in another, each reducing and handing on
    the rows as soon as the HR rows they reach are decoded (libvips, numpy and the PNG deflate
    release the GIL). Calls for one scale come from one thread, in order.
    """
    scales = tuple(sorted(scales))
    w, h, bands = hr.width, hr.height, hr.bands
    pad = CONTEXT * max(scales)
    if w < pad or h < pad:  # too small for one reflection: mirror the whole image in libvips
        small = hr.copy_memory()
        for s in scales:
            sink(s, _padded_reduce(small, s).numpy().reshape(h // s, w // s, bands))
        return
    src = _MirroredHR(hr, pad, band_rows)
    try:
        _run_scales(src, scales, sink, chunk_rows, threaded)
    finally:
        image, buffer = src.image, src.buffer
        del src.image, src.buffer, image  # libvips lets go of the memory first
        _BUFFERS.give(buffer)


def _run_scales(src: _MirroredHR, scales: tuple[int, ...], sink, chunk_rows: int, threaded: bool) -> None:
    from concurrent.futures import ThreadPoolExecutor

    w, h, bands, pad = src.width, src.height, src.bands, src.pad

    def one_scale(s: int) -> None:
        c = CONTEXT * s  # the border this scale reads: a multiple of s
        lr = src.image.crop(pad - c, pad - c, w + 2 * c, h + 2 * c).reduce(s, s, kernel="cubic", gap=0.0)
        lw, lh = w // s, h // s
        step = max(1, chunk_rows // s, MIN_CHUNK_LR_ROWS)  # each step is a libvips evaluation: not too short
        for y in range(0, lh, step):
            n = min(step, lh - y)
            # LR rows up to j read HR rows up to (j + 1)·s + 2·s past the image's top (+ the border)
            src.wait(min(h + 2 * pad, pad + (y + n + CONTEXT) * s))
            if src.stopped:
                return
            block = lr.crop(CONTEXT, CONTEXT + y, lw, n).write_to_memory()
            sink(s, _as_rows(block, n, lw, bands))

    if not threaded:
        src.fill()
        for s in scales:
            one_scale(s)
        return
    from concurrent.futures import FIRST_EXCEPTION, wait

    with ThreadPoolExecutor(len(scales) + 1, thread_name_prefix="lowres") as pool:
        jobs = [pool.submit(src.fill), *(pool.submit(one_scale, s) for s in scales)]
        try:
            done, _ = wait(jobs, return_when=FIRST_EXCEPTION)  # a failure anywhere stops the rest at once
            for job in done:
                if job.exception() is not None:
                    raise job.exception()
            for job in jobs:
                job.result()
        except BaseException:
            src.stop()  # the scales waiting for rows that will not come raise too
            raise


def _as_rows(data, n: int, width: int, bands: int):
    import numpy as np

    return np.frombuffer(data, np.uint8).reshape(n, width, bands)


def bicubic_pyramid(image, scales: Sequence[int] = SCALES, crop_multiple: int = CROP_MULTIPLE) -> dict:
    """{scale: LR image} of one HR ``pyvips.Image``: prepared (see :func:`prepare`), cropped top-left
    to multiples of ``crop_multiple``, each scale reduced directly from the HR (never from another LR).

    The HR is read once (decoded once, if ``image`` is a file) and the LR images come back in
    memory, 8-bit, with the HR's interpretation.
    """
    import numpy as np

    scales = check_scales(scales, crop_multiple)
    hr, _ = prepare(image)
    left, top, w, h = crop_box(hr.width, hr.height, crop_multiple)
    if w == 0 or h == 0:
        raise ValueError(f"image is {hr.width}x{hr.height}, smaller than --crop-multiple {crop_multiple}")
    hr = hr.crop(left, top, w, h)
    pyvips = _vips()
    parts: dict[int, list] = {s: [] for s in scales}
    stream_pyramid(hr, scales, lambda s, rows: parts[s].append(rows))
    out = {}
    for s in scales:
        lr = pyvips.Image.new_from_array(np.concatenate(parts[s]))
        out[s] = lr.copy(interpretation=hr.interpretation)
    return out


# --------------------------------------------------------------------------- one task


@dataclass(frozen=True)
class LowresTask:
    source: str
    stem: str
    out: str
    scales: tuple[int, ...]
    crop_multiple: int
    vips_threads: int
    max_pixels: int = DEFAULT_MAX_PIXELS
    rewrite: tuple[int, ...] = ()  # scales to write even if their PNG looks complete (their check in lowres.csv failed)


_configured: int | None = None


M_ARENA_MAX = -8  # glibc mallopt parameter
ARENA_MAX = 2


def _fewer_malloc_arenas() -> None:
    """Two malloc arenas per process instead of glibc's eight per core.

    Every thread that allocates (the decoder, one per scale, libvips' workers) otherwise gets an
    arena of its own, and each keeps the megabytes of band and row buffers it once held: peak RSS
    over a run was 3.7× one decoded image with them, 2.4× with two, at the same speed
    (benchmarks/bench_lowres.py).
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, ARENA_MAX)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def _configure_vips(threads: int) -> object:
    """Per process: no operation cache (memory stays flat over thousands of images), ``threads`` vips threads."""
    global _configured
    pyvips = _vips()
    if _configured is None:
        _fewer_malloc_arenas()
    if _configured != threads:
        pyvips.cache_set_max(0)
        pyvips.cache_set_max_mem(0)
        pyvips.concurrency_set(threads)
        _configured = threads
    return pyvips


def lr_path(out: str | os.PathLike, scale: int, stem: str) -> Path:
    return Path(out) / f"X{scale}" / f"{stem}.png"


def _vips_reason(exc: BaseException) -> str:
    """libvips' own words (its ``detail``, e.g. "VipsJpeg: premature end of JPEG image"), on one line."""
    text = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc)
    return " ".join(str(text).split())


def _is_complete(path: Path, size: tuple[int, int], source_mtime_ns: int) -> bool:
    """A whole PNG of the expected size, written after the source last changed."""
    if png_size(path) != size:
        return False
    try:
        return path.stat().st_mtime_ns >= source_mtime_ns
    except OSError:
        return False


def _write_scales(hr, scales: Sequence[int], sizes: dict, task: LowresTask, profile: bytes | None) -> None:
    """Stream ``hr`` through :func:`stream_pyramid` into one PNG per scale.

    Each scale's rows are filtered and deflated in that scale's thread as they come, while the
    HR is still being decoded. Every PNG gets its final name only when all of them are
    complete; on any error none does.
    """
    pyvips = _vips()
    # No fsync per LR file: the rename is atomic, and a file a crash might leave incomplete
    # fails png_size's check (signature, IHDR size, IEND trailer) and is redone on resume.
    writers: dict[int, PngStream] = {}
    try:
        for s in scales:
            writers[s] = PngStream(lr_path(task.out, s, task.stem), *sizes[s], hr.bands, icc_profile=profile,
                                   fsync=False)
        try:
            stream_pyramid(hr, scales, lambda s, rows: writers[s].write(rows))
        except pyvips.Error as exc:
            raise ValueError(f"cannot decode: {_vips_reason(exc)}") from None
        for s in scales:
            writers[s].close()
    except BaseException as exc:
        for w in writers.values():
            w.abort(exc)
        raise


def _open_header(pyvips, source: str):
    """The libvips image of ``source``, its header read, no pixel decoded yet.

    libvips takes file names as UTF-8; a name that is not (``b"\\xff.png"``) is opened through
    ``/proc/self/fd`` (Linux), so such files are processed like any other.
    """
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        fd = os.open(source, os.O_RDONLY)
        try:
            if not os.path.exists(f"/proc/self/fd/{fd}"):
                raise ValueError("the file name is not UTF-8, which libvips cannot open on this system")
            # libvips may reopen the path when it reads pixels: the descriptor stays open while the image lives
            return pyvips.Image.new_from_file(f"/proc/self/fd/{fd}", access="sequential", fail_on="error"), fd
        except BaseException:
            os.close(fd)
            raise
    return pyvips.Image.new_from_file(source, access="sequential", fail_on="error"), None


def make_lowres(task: LowresTask) -> dict:
    """Write every scale of one HR image (unless already complete); return its ``lowres.csv`` row.

    A bad image raises (the executor turns it into a failed row); a failure of the machine itself
    (disk full, I/O error, read-only filesystem: :data:`ENVIRONMENT_ERRNOS`) comes back as a failed
    row marked ``environment``, so the run can exit non-zero for it and not for bad images."""
    try:
        return _make_lowres(task)
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        return {"source": task.source, "stem": task.stem, "status": "failed",
                "error": f"{exc.strerror or exc}{where}", "environment": True}


def _make_lowres(task: LowresTask) -> dict:
    pyvips = _configure_vips(task.vips_threads)
    source_mtime = os.stat(task.source).st_mtime_ns if os.path.isfile(task.source) else 0
    with open_hr(task.source, task.max_pixels) as image:
        return _from_header(pyvips, image, task, source_mtime)


@contextlib.contextmanager
def open_hr(source: str, max_pixels: int = DEFAULT_MAX_PIXELS):
    """The libvips image of the HR file ``source``, its header read and no pixel decoded yet, checked
    against the pixel limit before any buffer exists (a 74-byte PNG may declare 100,000²).

    What every command that decodes an HR image opens it with (lowres, sr pairs, sr degrade): a file
    that is missing, unreadable or over ``max_pixels`` raises ``FileNotFoundError`` / ``ValueError``,
    which the executor turns into a failed row. A name that is not UTF-8 works too (:func:`_open_header`).
    """
    pyvips = _vips()
    if not os.path.isfile(source):
        raise FileNotFoundError(f"no such file: {source}")
    try:
        image, fd = _open_header(pyvips, source)
    except pyvips.Error as exc:
        raise ValueError(f"not a readable image: {_vips_reason(exc)}") from None
    try:
        if image.width * image.height > max_pixels:
            raise ValueError(f"image is {image.width}x{image.height} ({image.width * image.height / 1e6:,.0f} MP), "
                             f"over the pixel limit of {max_pixels / 1e6:,.0f} MP (--max-pixels)")
        yield image
    finally:
        del image
        if fd is not None:
            os.close(fd)


def _from_header(pyvips, image, task: LowresTask, source_mtime: int) -> dict:
    hr, notes = prepare(image)
    width, height, bands = hr.width, hr.height, hr.bands  # as a viewer shows it: orientation applied
    box = crop_box(width, height, task.crop_multiple)
    if box[2] == 0 or box[3] == 0:
        raise ValueError(f"image is {hr.width}x{hr.height}, smaller than the crop multiple {task.crop_multiple}")
    sizes = {s: (box[2] // s, box[3] // s) for s in task.scales}
    todo = [s for s in task.scales
            if s in task.rewrite or not _is_complete(lr_path(task.out, s, task.stem), sizes[s], source_mtime)]
    decoded_mp = 0.0
    if todo:
        if any(n.startswith("EXIF orientation") for n in notes):
            try:  # a rotation reads the image in another order than it is stored: decode it whole first
                hr = hr.copy_memory()
            except pyvips.Error as exc:
                raise ValueError(f"cannot decode: {_vips_reason(exc)}") from None
        hr = hr.crop(*box)
        profile = hr.get("icc-profile-data") if hr.get_typeof("icc-profile-data") else None
        _write_scales(hr, todo, sizes, task, profile)
        decoded_mp = width * height / 1e6
    row: dict = {"source": task.source, "stem": task.stem, "status": "written" if todo else "already complete",
                 "width": width, "height": height, "bands": bands, "crop_left": box[0], "crop_top": box[1],
                 "crop_width": box[2], "crop_height": box[3], "notes": "; ".join(notes)}
    for s in task.scales:
        row[f"X{s}_file"] = f"X{s}/{task.stem}.png"
        row[f"X{s}_width"], row[f"X{s}_height"] = sizes[s]
    row["error"] = ""
    row["decoded_megapixels"] = decoded_mp
    return row


# --------------------------------------------------------------------------- the set


@dataclass
class LowresReport:
    """What a run did: counts, the failures (source, reason), the table written and the time.

    ``environment_failures`` counts the failures of the machine (disk full, I/O error, read-only
    filesystem), not of an image: a run with any exits non-zero whatever ``strict`` says."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    table: Path | None = None
    seconds: float = 0.0
    hr_megapixels: float = 0.0  # decoded in this run
    environment_failures: int = 0

    @property
    def total(self) -> int:
        return self.done + self.skipped + self.failed


class LowresFailures(UserError):
    """Raised by :func:`build_lowres` (after writing the table) when images failed and ``strict=True``,
    or when any image failed for a reason of the environment (disk full, I/O error).

    A :class:`UserError` with exit status 1: wherever lowres runs (``methbuild lowres``, ``methbuild
    build`` of MetH-SR) it ends as one line on stderr, never a traceback."""

    exit_code = 1

    def __init__(self, report: LowresReport):
        if report.environment_failures:
            first = next((reason for _, reason in report.failures), "")
            message = (f"{report.environment_failures} image(s) failed because of the machine, not the image "
                       f"(first: {first}); fix it and rerun the same command to resume")
        else:
            message = f"{report.failed} of {report.total} image(s) failed; see {report.table}"
        super().__init__(message)
        self.report = report


def check_stems(sources: Sequence[Path]) -> None:
    """Two sources with one stem would write the same LR files: refuse before any work."""
    seen: dict[str, Path] = {}
    for p in sources:
        if p.stem in seen and seen[p.stem] != p:
            raise UserError(f"{table_text(str(seen[p.stem]))!r} and {table_text(str(p))!r} share the name "
                            f"{table_text(p.stem)!r}, so both would write X<s>/{table_text(p.stem)}.png; "
                            "rename one or process them separately")
        seen[p.stem] = p


def build_lowres(sources: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                 scales: Sequence[int] = SCALES, crop_multiple: int = CROP_MULTIPLE,
                 workers: int | None = None, strict: bool = False, progress: bool = True,
                 vips_threads: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> LowresReport:
    """Write ``out/X<s>/<stem>.png`` for every source and scale, and ``out/lowres.csv``.

    One task per HR image (decode once, all scales). Images already complete (every LR file
    present, whole and of the expected size) are skipped, so a rerun resumes. An image that
    cannot be read, or declares more than ``max_pixels`` pixels (checked from its header, before any
    buffer is allocated), is a row with ``status=failed`` and its reason, not an exception; with
    ``strict=True`` :class:`LowresFailures` is raised at the end (the table is written first), and
    always when an image failed because of the environment (disk full, I/O error).
    ``vips_threads`` (default: the CPUs left per worker, so 1 with one worker per CPU) bounds
    libvips' threads in each worker so workers do not oversubscribe the cores. One run per ``out``
    at a time (:func:`methbuild.io.lock.folder_lock`).
    """
    started = time.perf_counter()
    scales = check_scales(scales, crop_multiple)
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1 (got {workers})")
    if max_pixels < 1:
        raise UserError(f"--max-pixels must be at least 1 (got {max_pixels})")
    paths = [Path(p) for p in sources]
    if not paths:
        raise UserError("no images to process")
    check_stems(paths)
    out = ensure_writable_dir(out, "--out folder")
    with folder_lock(out):
        return _build_locked(paths, out, scales, crop_multiple, workers, strict, progress, vips_threads, max_pixels,
                             started)


def _build_locked(paths: list[Path], out: Path, scales: tuple[int, ...], crop_multiple: int, workers: int | None,
                  strict: bool, progress: bool, vips_threads: int | None, max_pixels: int,
                  started: float) -> LowresReport:
    for s in scales:
        folder = ensure_writable_dir(out / f"X{s}", "output folder")
        clean_stale_temps(folder)
    unique = list(dict.fromkeys(paths))
    cpus = default_workers()
    workers = min(workers or cpus, len(unique))
    threads = vips_threads or max(1, cpus // workers)
    tasks = [LowresTask(str(p), p.stem, str(out), scales, crop_multiple, threads, max_pixels) for p in unique]
    previous = _previous_rows(out / CSV_NAME)
    kept, todo = {}, []
    for t in tasks:
        old = previous.get(table_text(t.source))
        row = _still_complete(old, t)
        if row is not None:
            kept[t.source] = row
        elif old and old.get(CHECK_COLUMN) and old.get("status") in ("written", "already complete"):
            # a finished row whose check no longer agrees: what changed under it (the row or the source: every
            # scale; else the LR files that did) is not trusted and is written again
            todo.append(dataclasses.replace(t, rewrite=_failed_checks(old, t)))
        else:
            todo.append(t)
    done = run_tasks(make_lowres, todo, workers=min(workers, max(1, len(todo))), desc="lowres", unit="img",
                     progress=progress) if todo else []
    by_source = {t.source: r for t, r in zip(todo, done)}
    report = LowresReport()
    rows = []
    for task in tasks:
        if task.source in kept:
            rows.append(kept[task.source])
            report.skipped += 1
            continue
        res = by_source[task.source]
        if res.ok and res.value["status"] != "failed":
            row = dict(res.value)
            report.hr_megapixels += row.pop("decoded_megapixels")
            if row["status"] == "written":
                report.done += 1
            else:
                report.skipped += 1
            row = _with_check(_texts(row), task)
        else:
            if res.ok:  # a failure of the machine, returned as a value by make_lowres
                reason = res.value["error"]
                report.environment_failures += 1
            else:
                reason = res.error or "unknown error"
                for expected in ("ValueError: ", "FileNotFoundError: "):  # our own messages: the type adds nothing
                    reason = reason.removeprefix(expected)
            row = _texts({"source": task.source, "stem": task.stem, "status": "failed", "error": reason})
            report.failed += 1
            report.failures.append((row["source"], row["error"]))
        rows.append(row)
    from methbuild.io.tables import write_table  # pandas: only in the parent, never in the workers

    report.table = write_table(_table(rows, scales), out / CSV_NAME)
    report.seconds = time.perf_counter() - started
    if report.environment_failures or (strict and report.failed):
        raise LowresFailures(report)
    return report


def _texts(row: dict) -> dict:
    """The row with every text as valid UTF-8 (a non-UTF-8 file name as ``\\xNN`` escapes): as written."""
    return {k: table_text(v) if isinstance(v, str) else v for k, v in row.items()}


CHECK_COLUMN = "check"
_CHECKED = ("source", "stem", "width", "height", "bands", "crop_left", "crop_top", "crop_width",
            "crop_height", "notes")


def _row_check(row: dict, task: LowresTask) -> str | None:
    """``<row>-<X2>-<X4>...``: a digest of a finished row as written to the CSV and of the source's size,
    then one per scale of that and the LR file's size. A rerun trusts a row only while it still agrees,
    so an edited or shuffled ``lowres.csv``, a source replaced by another file, or a truncated or replaced
    LR file is noticed with one ``stat`` per file (never a read); a mismatch in a scale's part only
    redoes that scale. Sizes, not times: the table of two identical runs is identical.
    None when the source cannot be read."""
    h = hashlib.sha256()
    try:
        h.update(str(os.stat(task.source).st_size).encode())
    except OSError:
        return None
    for key in (*_CHECKED, *(f"X{s}_{k}" for s in task.scales for k in ("file", "width", "height"))):
        v = row.get(key, "")
        h.update(b"\0" + ("" if v is None else str(v)).encode("utf-8", "backslashreplace"))
    head = h.hexdigest()[:12]
    parts = [head]
    for s in task.scales:
        try:
            size = os.stat(lr_path(task.out, s, task.stem)).st_size
        except OSError:
            size = -1
        parts.append(hashlib.sha256(f"{head}:{s}:{size}".encode()).hexdigest()[:8])
    return "-".join(parts)


def _failed_checks(old: dict, task: LowresTask) -> tuple[int, ...]:
    """The scales whose part of ``old``'s check no longer agrees (every scale if the row's own part does not)."""
    was = str(old.get(CHECK_COLUMN, "")).split("-")
    now = (_row_check(old, task) or "").split("-")
    if len(was) != len(task.scales) + 1 or len(now) != len(was) or was[0] != now[0]:
        return task.scales
    return tuple(s for s, a, b in zip(task.scales, was[1:], now[1:]) if a != b)


def _with_check(row: dict, task: LowresTask) -> dict:
    row[CHECK_COLUMN] = _row_check(row, task) or ""
    return row


def _previous_rows(path: Path) -> dict[str, dict]:
    """source (as written) -> row of an earlier run's ``lowres.csv`` (empty when there is none or it is unreadable)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return {r["source"]: r for r in csv.DictReader(fh) if r.get("source")}
    except (OSError, csv.Error, UnicodeDecodeError, KeyError):
        return {}


def _still_complete(row: dict | None, task: LowresTask) -> dict | None:
    """The earlier row of a finished image, as this run's row, when nothing about it has changed:
    same crop rule, its check digest (:func:`_row_check`) still right, every scale's PNG whole, of the
    recorded size and newer than the source. This lets a rerun over thousands of finished images skip
    them without opening any source; a row that fails any test is redone (the image's header is read
    again, and its LR files are rewritten only if they are not whole)."""
    if not row or row.get("status") not in ("written", "already complete"):
        return None
    try:
        if not row.get(CHECK_COLUMN) or _row_check(row, task) != row[CHECK_COLUMN]:
            return None
        width, height = int(row["width"]), int(row["height"])
        box = (int(row["crop_left"]), int(row["crop_top"]), int(row["crop_width"]), int(row["crop_height"]))
        if box != crop_box(width, height, task.crop_multiple) or row.get("stem") != table_text(task.stem):
            return None
        source_mtime = os.stat(task.source).st_mtime_ns
        new = {k: row[k] for k in ("source", "stem", "width", "height", "bands", "crop_left", "crop_top",
                                    "crop_width", "crop_height", "notes")}
        new["status"] = "already complete"
        for s in task.scales:
            size = (box[2] // s, box[3] // s)
            if (int(row[f"X{s}_width"]), int(row[f"X{s}_height"])) != size:
                return None
            if not _is_complete(lr_path(task.out, s, task.stem), size, source_mtime):
                return None
            new[f"X{s}_file"], new[f"X{s}_width"], new[f"X{s}_height"] = f"X{s}/{table_text(task.stem)}.png", *size
    except (KeyError, TypeError, ValueError, OSError):
        return None
    new["error"] = ""
    return _with_check(new, task)


def _table(rows: list[dict], scales: tuple[int, ...]):
    import pandas as pd

    columns = ["source", "stem", "status", "width", "height", "bands", "crop_left", "crop_top",
               "crop_width", "crop_height", "notes"]
    for s in scales:
        columns += [f"X{s}_file", f"X{s}_width", f"X{s}_height"]
    columns += ["error", CHECK_COLUMN]
    df = pd.DataFrame(rows, columns=columns)
    ints = [c for c in columns if c.endswith(("width", "height", "left", "top")) or c == "bands"]
    for c in ints:  # failed rows leave them empty, not 0.0; kept rows come from the old CSV as text
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
    return df


# --------------------------------------------------------------------------- inputs


def sources_from(src: str | os.PathLike) -> list[Path]:
    """The HR images named by ``src``: a folder (its image files, sorted, not recursive), a CSV
    with an ``Image file`` column (a MetH CSV: the bare name ``<id>.jpg`` lives in ``data/`` beside
    ``<Name>.csv``; a path with a folder, such as the older ``data/<id>.jpg``, is relative to the CSV's
    folder; absolute paths kept), or one image file."""
    src = Path(src)
    if not src.exists():
        raise UserError(f"SRC {str(src)!r} does not exist")
    if src.is_dir():
        found = sorted(p for p in src.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())
        if not found:
            raise UserError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {str(src)!r}")
        return found
    if src.suffix.lower() != ".csv":
        return [src]
    try:
        with open(src, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            if IMAGE_FILE_COLUMN not in header:
                raise UserError(f"{str(src)!r} has no {IMAGE_FILE_COLUMN!r} column "
                                f"(columns: {', '.join(header[:12]) or 'none'})")
            found = []
            for line, row in enumerate(reader, start=2):
                value = (row.get(IMAGE_FILE_COLUMN) or "").strip()
                if not value:
                    raise UserError(f"{str(src)!r} row {line} has an empty {IMAGE_FILE_COLUMN!r}")
                found.append(resolve_image_file(src.parent, value))
    except UnicodeDecodeError as exc:
        raise UserError(f"{str(src)!r} is not a UTF-8 CSV ({exc.reason})") from None
    except csv.Error as exc:
        raise UserError(f"{str(src)!r} is not a readable CSV: {exc}") from None
    if not found:
        raise UserError(f"{str(src)!r} lists no images")
    return found
