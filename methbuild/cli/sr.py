"""`methbuild sr`: super-resolution layouts for BasicSR, Real-ESRGAN and mmagic (pairs, sub-images, LMDB, degradations)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from methbuild.cli._options import SEED, SEED_HELP, bounded_int, scheduler_option
from methbuild.cli.lowres import _GreedyScales, _parse_scales
from methbuild.errors import UserError

DEFAULT_SCALES = (2, 4, 8, 16)


@click.group("sr")
def command() -> None:
    """Super-resolution datasets in the layouts BasicSR, Real-ESRGAN and mmagic read.

    \b
    methbuild sr pairs SRC --out DIR            GT/ + LRbicx<s>/ folders, LR x s = HR exactly
    methbuild sr subimages DIR                  BasicSR's 480/240 sub-images of those folders
    methbuild sr lmdb DIR                       BasicSR's LMDB layout, written in bounded batches
    methbuild sr degrade SRC --out DIR          a frozen Real-ESRGAN degradation set, replayable
    """


def _summary(name: str, report, what: str) -> None:
    for item, reason in report.failures[:20]:
        click.echo(f"failed: {item}: {reason}", err=True)
    if len(report.failures) > 20:
        click.echo(f"... and {len(report.failures) - 20} more failures", err=True)
    skipped = f", {report.skipped} already complete" if report.skipped else ""
    click.echo(f"sr {name}: {report.total} images: {report.done} done{skipped}, {report.failed} failed "
               f"in {report.seconds:.1f} s; {what}")


def _run(name: str, fn, what):
    from methbuild.sr._common import SrFailures

    try:
        report = fn()
    except SrFailures as exc:
        _summary(name, exc.report, what(exc.report))
        raise SystemExit(1) from None
    _summary(name, report, what(report))
    return report


def _source_list(src: Path):
    from methbuild.lowres import sources_from

    return sources_from(src)


@command.command("pairs", cls=_GreedyScales)
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: GT/, LRbicx<s>/, meta_info.txt, pairs.csv.")
@click.option("--scales", multiple=True, metavar="S [S ...]",
              help="Downscaling factors [default: 2 4 8 16]; the HR is cropped to a multiple of their lcm.")
@click.option("--workers", type=bounded_int(1, 4096), default=None, help="Worker processes [default: CPU count].")
@click.option("--strict", is_flag=True, help="Exit with status 1 when any image failed.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@scheduler_option
def pairs(src, out, scales, workers, strict, quiet) -> None:
    """Paired HR/LR folders: GT/<stem>.png and LRbicx<s>/<stem>.png, every LR exactly HR/s.

    SRC is a MetH-SR dataset CSV, any CSV with an `Image file` column, a folder of images or one
    image. Each HR is decoded once, cropped top-left to a multiple of the lcm of the scales (the
    crop is recorded in pairs.csv), written losslessly as GT and shrunk with MATLAB-bicubic
    (antialiased Keys cubic, as `methbuild lowres`). meta_info.txt lists `<stem>.png (h,w,c)`.

    \b
    Example:  methbuild sr pairs MetH-SR/MetH-SR.csv --out MetH-SR/sr --scales 2 4
    """
    from methbuild.io.lock import folder_lock
    from methbuild.sr.pairs import write_pairs

    scale_list = _parse_scales(scales) if scales else DEFAULT_SCALES
    sources = _source_list(src)
    with folder_lock(out):
        _run("pairs", lambda: write_pairs(sources, out, scale_list, workers=workers, strict=strict,
                                          progress=not quiet),
             lambda r: f"written: {os.path.join(str(out), '')} (GT/, LRbicx<s>/, meta_info.txt, pairs.csv)")


@command.command("subimages")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--crop", type=bounded_int(1, 1 << 20), default=480, show_default=True,
              help="HR sub-image side; LR folders use crop/s.")
@click.option("--step", type=bounded_int(1, 1 << 20), default=240, show_default=True,
              help="HR sliding-window step; LR folders use step/s.")
@click.option("--thresh", type=bounded_int(0, 1 << 20), default=0, show_default=True,
              help="Add a last crop flush with the far edge when more than this many HR pixels are left over.")
@click.option("--level", type=click.IntRange(0, 9), default=3, show_default=True,
              help="PNG deflate level (BasicSR: 3); ISA-L levels stop at 3.")
@click.option("--workers", type=bounded_int(1, 4096), default=None, help="Worker processes [default: CPU count].")
@click.option("--strict", is_flag=True, help="Exit with status 1 when any image failed.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@scheduler_option
def subimages(folder, crop, step, thresh, level, workers, strict, quiet) -> None:
    """BasicSR's sub-images (extract_subimages.py): overlapping crops named <stem>_s001.png.

    FOLDER is a paired folder from `sr pairs` (GT/ and LRbicx<s>/ become GT_sub/ and LRbicx<s>_sub/,
    with crop and step divided by each scale so HR and LR sub-images pair up), or a plain folder of
    PNGs (into FOLDER_sub beside it). Positions along each side: 0, step, 2 step, ... while a crop
    fits, then one flush with the far edge if more than --thresh pixels are left. Each image is
    decoded once; each output folder gets a meta_info.txt.

    \b
    Example:  methbuild sr subimages MetH-SR/sr --crop 480 --step 240
    """
    from methbuild.io.lock import folder_lock
    from methbuild.sr.subimages import extract_subimages

    if not folder.is_dir():
        raise UserError(f"{str(folder)!r} is not a folder")
    with folder_lock(folder):
        _run("subimages", lambda: extract_subimages(folder, crop=crop, step=step, thresh=thresh, level=level,
                                                    workers=workers, strict=strict, progress=not quiet),
             lambda r: "written: " + ", ".join(f"{d} ({n} sub-images)" for d, n in
                                               zip(r.extra.get("folders", []), r.extra.get("subimages", []))))


@command.command("lmdb")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The LMDB folder (must end in .lmdb) [default: FOLDER.lmdb]; for a paired folder, where "
                   "the <name>.lmdb folders go [default: FOLDER].")
@click.option("--level", type=click.IntRange(0, 9), default=1, show_default=True,
              help="PNG deflate level of the stored values (BasicSR: 1), recorded in meta_info.txt.")
@click.option("--batch-mb", type=bounded_int(1, 1 << 16), default=128, show_default=True,
              help="Commit every this many megabytes of values: the writer's memory is about twice this.")
@click.option("--workers", type=bounded_int(1, 4096), default=None, help="Worker processes [default: CPU count].")
@click.option("--strict", is_flag=True, help="Exit with status 1 when any image failed.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def lmdb(folder, out, level, batch_mb, workers, strict, quiet) -> None:
    """BasicSR's LMDB layout: data.mdb, lock.mdb, meta_info.txt (`name.png (h,w,c) level`).

    FOLDER is a folder of PNGs (one LMDB, FOLDER.lmdb beside it), or a paired folder from `sr pairs`
    (one LMDB per GT, LRbicx<s>, GT_sub, LRbicx<s>_sub folder: FOLDER/<name>.lmdb). Keys are the
    file names without extension, as BasicSR's make_lmdb_from_imgs. Values are PNG bytes; writes
    are committed in batches of --batch-mb, so memory stays bounded whatever the set's size, and
    the map grows when LMDB reports it full.

    \b
    Example:  methbuild sr lmdb MetH-SR/sr
    """
    from methbuild.io.lock import folder_lock
    from methbuild.sr.lmdb_layout import check_job, lmdb_jobs, write_lmdb

    jobs = lmdb_jobs(folder, out)
    for src, dest in jobs:  # every folder checked before anything is written
        check_job(src, dest)
    for src, dest in jobs:
        with folder_lock(dest):
            _run("lmdb", lambda: write_lmdb(src, dest, level=level, batch_bytes=batch_mb << 20, workers=workers,
                                            strict=strict, progress=not quiet),
                 lambda r: f"written: {r.extra.get('out', dest)} ({r.extra.get('bytes', 0) / 1e6:.1f} MB, "
                           f"map grown {r.extra.get('grown', 0)} times)")


def _overrides(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--param takes NAME=VALUE (got {v!r})")
        out[name.strip()] = value.strip()
    return out


@command.command("degrade")
@click.argument("src", type=click.Path(path_type=Path), required=False)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output folder (GT/, LR<preset>x<s>/, params/, degrade.csv); with --replay, the LR file to "
                   "write [default: its place in the set].")
@click.option("--preset", default="realesrgan", show_default=True,
              help="realesrgan (Real-ESRGAN's second-order pipeline) or bicubic (MATLAB-bicubic HR/s only).")
@click.option("--scale", type=bounded_int(1, 64), default=4, show_default=True, help="LR = HR / scale, exactly.")
@click.option("--seed", type=SEED, default=0, show_default=True, help=f"Seed of the whole set, {SEED_HELP}.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Override one preset value, e.g. noise_range=1,10 or sinc_prob=0 (repeatable).")
@click.option("--replay", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Rebuild one LR bit for bit from its params/<stem>.json (SRC not needed).")
@click.option("--workers", type=bounded_int(1, 4096), default=None, help="Worker processes [default: CPU count].")
@click.option("--strict", is_flag=True, help="Exit with status 1 when any image failed.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@scheduler_option
def degrade(src, out, preset, scale, seed, params, replay, workers, strict, quiet) -> None:
    """A frozen degradation set: Real-ESRGAN's second-order pipeline, applied once, seeded per image.

    SRC is a folder of images, a CSV with an `Image file` column or one image. Image i (its position
    in SRC) uses SeedSequence(SEED, spawn_key=(i,)), whatever --workers. Each HR is cropped
    top-left to a multiple of --scale and written to GT/; its LR (exactly HR/scale) goes to
    LR<preset>x<scale>/, and every drawn parameter (kernels, sigmas, angles, sinc cut-offs, resize
    modes and factors, noise kinds, levels and seeds, grey or colour, JPEG qualities) to
    params/<stem>.json. `--replay params/<stem>.json` rebuilds that LR bit for bit.

    \b
    Examples:  methbuild sr degrade MetH-SR/sr/GT --out MetH-SR/realesrgan-x4 --seed 1
               methbuild sr degrade --replay MetH-SR/realesrgan-x4/params/436535.json
    """
    from methbuild.io.lock import folder_lock

    if replay is not None:
        if src is not None:
            raise UserError("give either SRC or --replay, not both")
        from methbuild.sr.degrade import replay as run_replay

        if out is None:
            with folder_lock(replay.resolve().parent.parent):
                result = run_replay(replay)
        else:
            result = run_replay(replay, out)
        verdict = "matches" if result.matches else "DIFFERS FROM"
        click.echo(f"sr degrade --replay: {result.path} (pixels sha256 {result.sha256[:16]}…) {verdict} the "
                   "recorded LR")
        if not result.matches:
            raise SystemExit(1)
        return
    if src is None or out is None:
        raise UserError("sr degrade needs SRC and --out (or --replay params/<stem>.json)")
    from methbuild.sr.degrade import write_degraded
    from methbuild.sr.presets import preset_with

    chosen = preset_with(preset, _overrides(params))
    sources = _source_list(src)
    with folder_lock(out):
        _run("degrade", lambda: write_degraded(sources, out, preset=chosen, scale=scale, seed=seed, workers=workers,
                                               strict=strict, progress=not quiet),
             lambda r: f"written: {os.path.join(str(out), '')} (GT/, {r.extra.get('lr_dir', 'LR')}/, params/, "
                       "degrade.csv)")
