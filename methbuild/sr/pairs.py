"""Paired folders for SR training and testing: ``GT/<stem>.png`` and ``LRbicx<s>/<stem>.png``, LR·s = HR.

Each HR image is decoded once (:func:`methbuild.lowres.stream_pyramid`: orientation applied, 8-bit,
streamed band by band). It is cropped top-left to a multiple of the least common multiple of the
scales, so every LR is exactly HR/s (the "GT is not s× LQ" error of SR users cannot happen), and
the crop is recorded in ``pairs.csv``. The GT rows come out of the same stream as the LR rows (a
scale of 1 is the identity), so decoding, MATLAB-bicubic reduction and PNG encoding overlap.
``meta_info.txt`` lists ``<stem>.png (h,w,c)`` per GT, as BasicSR's ``meta_info_file`` expects.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from methbuild import lowres
from methbuild.errors import UserError
from methbuild.executor import default_workers, run_tasks
from methbuild.io.atomic import atomic_write_text, clean_stale_temps, ensure_writable_dir
from methbuild.io.lowres_png import PngStream
from methbuild.sr._common import GT_DIR, LR_PREFIX, META_INFO, SrFailures, SrReport, short_reason

SCALES = lowres.SCALES
TABLE = "pairs.csv"


@dataclass(frozen=True)
class PairTask:
    source: str
    stem: str
    out: str
    scales: tuple[int, ...]
    crop_multiple: int
    vips_threads: int


def gt_path(out: str | os.PathLike, stem: str) -> Path:
    return Path(out) / GT_DIR / f"{stem}.png"


def lr_path(out: str | os.PathLike, scale: int, stem: str) -> Path:
    return Path(out) / f"{LR_PREFIX}{scale}" / f"{stem}.png"


def crop_multiple_of(scales: Sequence[int]) -> int:
    """The least common multiple of the scales: the HR crop that makes every LR exactly HR/s."""
    return math.lcm(*(int(s) for s in scales)) if scales else 1


def make_pair(task: PairTask) -> dict:
    """Write the GT and every LR of one HR image (unless already complete); return its ``pairs.csv`` row."""
    pyvips = lowres._configure_vips(task.vips_threads)
    source_mtime = os.stat(task.source).st_mtime_ns if os.path.isfile(task.source) else 0
    # the same opener as lowres: header only, the pixel limit checked before any buffer, any file name
    with lowres.open_hr(task.source) as image:
        hr, notes = lowres.prepare(image)
        width, height, bands = hr.width, hr.height, hr.bands
        box = lowres.crop_box(width, height, task.crop_multiple)
        if box[2] == 0 or box[3] == 0:
            raise ValueError(f"image is {width}x{height}, smaller than the crop multiple {task.crop_multiple}")
        sizes = {1: (box[2], box[3]), **{s: (box[2] // s, box[3] // s) for s in task.scales}}
        paths = {1: gt_path(task.out, task.stem), **{s: lr_path(task.out, s, task.stem) for s in task.scales}}
        complete = all(lowres._is_complete(paths[s], sizes[s], source_mtime) for s in sizes)
        if not complete:
            if any(n.startswith("EXIF orientation") for n in notes):
                try:  # a rotation reads the image in another order than it is stored: decode it whole first
                    hr = hr.copy_memory()
                except pyvips.Error as exc:
                    raise ValueError(f"cannot decode: {lowres._vips_reason(exc)}") from None
            hr = hr.crop(*box)
            profile = hr.get("icc-profile-data") if hr.get_typeof("icc-profile-data") else None
            writers: dict[int, PngStream] = {}
            try:
                for s in sizes:
                    writers[s] = PngStream(paths[s], *sizes[s], bands, icc_profile=profile, fsync=False)
                try:
                    # scale 1 is the identity (reduce by 1 with the cubic kernel): the GT rows of the same decode
                    lowres.stream_pyramid(hr, tuple(sizes), lambda s, rows: writers[s].write(rows))
                except pyvips.Error as exc:
                    raise ValueError(f"cannot decode: {lowres._vips_reason(exc)}") from None
                for s in sizes:
                    writers[s].close()
            except BaseException as exc:
                for w in writers.values():
                    w.abort(exc)
                raise
    row = {"source": task.source, "stem": task.stem, "status": "already complete" if complete else "written",
           "width": width, "height": height, "bands": bands, "crop_left": box[0], "crop_top": box[1],
           "crop_width": box[2], "crop_height": box[3], "notes": "; ".join(notes), "error": ""}
    return row


def write_pairs(sources: Sequence[str | os.PathLike], out: str | os.PathLike, scales: Sequence[int] = SCALES, *,
                workers: int | None = None, strict: bool = False, progress: bool = True,
                vips_threads: int | None = None) -> SrReport:
    """Write ``out/GT/<stem>.png``, ``out/LRbicx<s>/<stem>.png``, ``out/meta_info.txt`` and ``out/pairs.csv``.

    One task per HR image (decoded once, GT and all scales from it); finished images are skipped on a
    rerun. An image that cannot be read is a ``failed`` row, not an exception; with ``strict=True``
    :class:`SrFailures` is raised after the tables are written. The caller holds the folder's lock.
    """
    started = time.perf_counter()
    scales = lowres.check_scales(scales, crop_multiple_of(scales) if scales else 1)
    multiple = crop_multiple_of(scales)
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1 (got {workers})")
    paths = [Path(p) for p in sources]
    if not paths:
        raise UserError("no images to process")
    lowres.check_stems(paths)
    out = ensure_writable_dir(out, "--out folder")
    for folder in [GT_DIR, *(f"{LR_PREFIX}{s}" for s in scales)]:
        clean_stale_temps(ensure_writable_dir(out / folder, "output folder"))
    unique = list(dict.fromkeys(paths))
    cpus = default_workers()
    workers = min(workers or cpus, len(unique))
    threads = vips_threads or max(1, cpus // workers)
    tasks = [PairTask(str(p), p.stem, str(out), scales, multiple, threads) for p in unique]
    results = run_tasks(make_pair, tasks, workers=workers, desc="sr pairs", unit="img", progress=progress)
    report = SrReport()
    rows = []
    for task, res in zip(tasks, results):
        if res.ok:
            row = res.value
            if row["status"] == "written":
                report.done += 1
            else:
                report.skipped += 1
        else:
            reason = short_reason(res.error)
            row = {"source": task.source, "stem": task.stem, "status": "failed", "error": reason}
            report.failed += 1
            report.failures.append((task.source, reason))
        rows.append(row)
    meta = "".join(f"{r['stem']}.png ({r['crop_height']},{r['crop_width']},{r['bands']})\n"
                   for r in rows if r["status"] != "failed")
    atomic_write_text(out / META_INFO, meta)
    report.table = _write_table(rows, out / TABLE)
    report.seconds = time.perf_counter() - started
    report.extra["scales"] = scales
    if strict and report.failed:
        raise SrFailures(report)
    return report


def _write_table(rows: list[dict], path: Path) -> Path:
    import pandas as pd

    from methbuild.io.tables import write_table

    columns = ["source", "stem", "status", "width", "height", "bands", "crop_left", "crop_top", "crop_width",
               "crop_height", "notes", "error"]
    df = pd.DataFrame(rows, columns=columns)
    for c in ("width", "height", "bands", "crop_left", "crop_top", "crop_width", "crop_height"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
    return write_table(df, path)
