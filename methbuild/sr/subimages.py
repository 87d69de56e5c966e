"""BasicSR's sub-images (``scripts/data_preparation/extract_subimages.py``), each image read once.

BasicSR cuts every large training image into overlapping crops so a loader reads small files: HR crop
480 step 240, the LR folders with crop and step divided by the scale, ``thresh_size`` 0, PNG
compression 3, names ``<stem>_s001.png`` numbered row by row from 1. Its position rule, per axis of
length ``n``: ``0, step, 2·step, …`` while a crop fits, then one more crop flush with the far edge
(``n − crop``) when the gap left after the last one is larger than ``thresh_size``. We keep that rule,
the names and the numbering exactly; an image smaller than the crop gives no sub-image (BasicSR's
script stops with an IndexError there). Since every LR side is HR/s and crop, step and threshold are
divided by s, HR and LR positions match and the keys pair up.

Unlike the script, one task takes one stem: its GT and every LR are each decoded once, the crops are
numpy views of the decoded image, and each is encoded by :func:`methbuild.sr.png.encode_png` (ISA-L)
and written atomically. A rerun skips stems whose sub-images are all there (checked from the PNG
headers, nothing decoded). Each output folder ``X_sub`` gets a ``meta_info_X_sub.txt`` beside it
(``<name> (h,w,c)`` per line, for BasicSR's ``meta_info_file``): never inside the image folder, where
BasicSR's folder reader would take it for an image.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from methbuild.errors import UserError
from methbuild.executor import default_workers, run_tasks
from methbuild.io.atomic import atomic_write_bytes, atomic_write_text, clean_stale_temps, ensure_writable_dir
from methbuild.io.lowres_png import png_size
from methbuild.sr._common import GT_DIR, SrFailures, SrReport, pair_folders, png_files, short_reason
from methbuild.sr.png import encode_png

CROP = 480
STEP = 240
THRESH = 0
PNG_LEVEL = 3
SUFFIX = "_sub"


def positions(length: int, crop: int, step: int, thresh: float = 0) -> list[int]:
    """Crop origins along one axis, BasicSR's rule: every ``step`` while a crop fits, then one flush
    with the far edge when more than ``thresh`` pixels would be left over. Empty when ``length < crop``."""
    if length < crop:
        return []
    starts = list(range(0, length - crop + 1, step))
    if length - (starts[-1] + crop) > thresh:
        starts.append(length - crop)
    return starts


def subimage_names(stem: str, height: int, width: int, crop: int, step: int, thresh: float = 0):
    """``[(name, top, left)]`` of one image's sub-images, numbered row by row from ``_s001``."""
    out = []
    index = 0
    for top in positions(height, crop, step, thresh):
        for left in positions(width, crop, step, thresh):
            index += 1
            out.append((f"{stem}_s{index:03d}.png", top, left))
    return out


@dataclass(frozen=True)
class Folder:
    """One input folder, where its sub-images go and its scale (1 for the HR)."""

    src: str
    dst: str
    scale: int


@dataclass(frozen=True)
class StemTask:
    stem: str
    folders: tuple[Folder, ...]  # the first is the reference (GT); the others must be it divided by their scale
    crop: int
    step: int
    thresh: float
    level: int


def _read(path: str) -> np.ndarray:
    """The pixels of an 8-bit grey or RGB PNG, H × W × bands, decoded once."""
    import pyvips

    try:
        image = pyvips.Image.new_from_file(path, access="sequential", fail_on="error")
        if image.format != "uchar" or image.bands not in (1, 3):
            raise ValueError(f"{path}: sub-images take 8-bit grey or RGB images, not {image.bands} band(s) "
                             f"of {image.format}")
        return image.numpy().reshape(image.height, image.width, image.bands)
    except pyvips.Error as exc:
        raise ValueError(f"cannot decode {path}: {' '.join(str(exc).split())}") from None


def make_subimages(task: StemTask) -> list[tuple[int, str, tuple[int, int, int]]]:
    """Write the sub-images of one stem in every folder; return ``[(folder index, name, (h, w, c))]``."""
    import pyvips

    pyvips.cache_set_max(0)
    heads = []
    for f in task.folders:
        path = os.path.join(f.src, f"{task.stem}.png")
        size = png_size(path)
        if size is None:
            raise ValueError(f"{path}: missing or not a complete PNG")
        heads.append(size)
    (gw, gh), g_scale = heads[0], task.folders[0].scale
    for (w, h), f in zip(heads, task.folders):
        if w * f.scale != gw * g_scale or h * f.scale != gh * g_scale:
            raise ValueError(f"{task.stem}: {f.src} is {w}x{h}, not the GT {gw}x{gh} divided by {f.scale}")
    out = []
    for i, ((w, h), f) in enumerate(zip(heads, task.folders)):
        s = f.scale
        names = subimage_names(task.stem, h, w, task.crop // s, task.step // s, task.thresh / s)
        c = task.crop // s
        source_mtime = os.stat(os.path.join(f.src, f"{task.stem}.png")).st_mtime_ns
        done = all(_is_current(os.path.join(f.dst, n), c, source_mtime) for n, _, _ in names)
        if not names:
            continue
        if done:  # kept from an earlier run: nothing decoded, the bands from one file's header
            pixels, bands = None, _png_bands(os.path.join(f.dst, names[0][0]))
        else:
            pixels = _read(os.path.join(f.src, f"{task.stem}.png"))
            bands = pixels.shape[2]
        for name, top, left in names:
            if pixels is not None:
                atomic_write_bytes(os.path.join(f.dst, name),
                                   encode_png(pixels[top: top + c, left: left + c], task.level), fsync=False)
            out.append((i, name, (c, c, bands)))
    return out


def _is_current(path: str, side: int, source_mtime_ns: int) -> bool:
    """A whole ``side``×``side`` PNG written after its source last changed."""
    if png_size(path) != (side, side):
        return False
    try:
        return os.stat(path).st_mtime_ns >= source_mtime_ns
    except OSError:
        return False


def meta_info_path(sub_folder: str | os.PathLike) -> Path:
    """``meta_info_<X_sub>.txt`` beside the sub-image folder ``X_sub``."""
    sub_folder = Path(sub_folder)
    return sub_folder.parent / f"meta_info_{sub_folder.name}.txt"


def _png_bands(path: str) -> int:
    with open(path, "rb") as fh:
        head = fh.read(26)
    return {0: 1, 2: 3, 4: 2, 6: 4}.get(head[25], 3)


def extract_subimages(root: str | os.PathLike, *, crop: int = CROP, step: int = STEP, thresh: float = THRESH,
                      level: int = PNG_LEVEL, workers: int | None = None, strict: bool = False,
                      progress: bool = True) -> SrReport:
    """Sub-images of a paired folder (``GT/`` + ``LRbicx<s>/``: into ``GT_sub/``, ``LRbicx<s>_sub/``) or of a
    plain folder of PNGs (into ``<folder>_sub`` beside it), BasicSR's rule and names.

    HR crop and step are ``crop`` and ``step``; scale ``s``'s are divided by ``s`` (each must divide them)."""
    started = time.perf_counter()
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{str(root)!r} is not a folder")
    if crop < 1 or step < 1 or thresh < 0:
        raise UserError(f"--crop and --step must be at least 1 and --thresh at least 0 (got {crop}, {step}, {thresh})")
    if not 0 <= level <= 9:
        raise UserError(f"--level must be 0..9 (got {level})")
    if (root / GT_DIR).is_dir():
        gt, lrs = pair_folders(root)
        folders = [Folder(str(gt), str(root / f"{GT_DIR}{SUFFIX}"), 1),
                   *(Folder(str(p), str(root / f"{p.name}{SUFFIX}"), s) for s, p in lrs)]
    else:
        folders = [Folder(str(root), str(root.parent / f"{root.name}{SUFFIX}"), 1)]
    for f in folders:
        if crop % f.scale or step % f.scale:
            raise UserError(f"--crop {crop} and --step {step} must be divisible by every scale (x{f.scale} in "
                            f"{f.src}), so that HR and LR sub-images cover the same area")
    stems = [p.stem for p in png_files(folders[0].src)]
    if not stems:
        raise UserError(f"no .png files in {folders[0].src!r}")
    for f in folders[1:]:
        missing = sorted(set(stems) - {p.stem for p in png_files(f.src)})
        if missing:
            raise UserError(f"{f.src!r} lacks {len(missing)} image(s) of {folders[0].src!r}, e.g. {missing[0]}.png")
    for f in folders:
        clean_stale_temps(ensure_writable_dir(f.dst, "output folder"))
    tasks = [StemTask(stem, tuple(folders), crop, step, thresh, level) for stem in stems]
    cpus = default_workers()
    results = run_tasks(make_subimages, tasks, workers=min(workers or cpus, len(tasks)), desc="sr subimages",
                        unit="img", progress=progress)
    report = SrReport()
    meta: list[list[str]] = [[] for _ in folders]
    for task, res in zip(tasks, results):
        if not res.ok:
            reason = short_reason(res.error)
            report.failed += 1
            report.failures.append((task.stem, reason))
            continue
        report.done += 1
        for i, name, (h, w, c) in res.value:
            meta[i].append(f"{name} ({h},{w},{c})\n")
    for f, lines in zip(folders, meta):
        atomic_write_text(meta_info_path(f.dst), "".join(lines))
    report.extra["folders"] = [f.dst for f in folders]
    report.extra["subimages"] = [len(lines) for lines in meta]
    report.seconds = time.perf_counter() - started
    if strict and report.failed:
        raise SrFailures(report)
    return report
