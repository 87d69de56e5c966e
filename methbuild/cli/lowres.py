"""`methbuild lowres`: bicubic low-resolution copies (the MetH-SR test set)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from methbuild.cli._options import scheduler_option

from methbuild.errors import UserError
from methbuild.io.imageinfo import DEFAULT_MAX_PIXELS
from methbuild.io.tables import table_text
from methbuild.lowres import CROP_MULTIPLE, SCALES, LowresFailures, build_lowres, sources_from

_INT = re.compile(r"^\d+$")


class _GreedyScales(click.Command):
    """Lets ``--scales 2 4 8 16`` take several values, as the issue spells it (click options take one).

    The integers right after ``--scales`` are joined into one value before click parses; a
    comma list (``--scales 2,4``) and a repeated option work too.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        joined: list[str] = []
        i = 0
        while i < len(args):
            a = args[i]
            if a == "--":
                joined += args[i:]
                break
            if a == "--scales" and i + 1 < len(args):
                values = [args[i + 1]]
                i += 2
                while i < len(args) and _INT.match(args[i]):
                    values.append(args[i])
                    i += 1
                joined += ["--scales", ",".join(values)]
                continue
            joined.append(a)
            i += 1
        return super().parse_args(ctx, joined)


def _parse_scales(values: tuple[str, ...]) -> tuple[int, ...]:
    out = []
    for v in values:
        for part in re.split(r"[,\s]+", v.strip()):
            if not part:
                continue
            try:
                out.append(int(part))
            except ValueError:
                raise UserError(f"--scales takes integers such as '2 4 8 16' (got {part!r})") from None
    return tuple(out)


@click.command("lowres", cls=_GreedyScales)
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: X<s>/<stem>.png per scale and lowres.csv.")
@click.option("--scales", multiple=True, metavar="S [S ...]",
              help=f"Downscaling factors, each dividing --crop-multiple [default: {' '.join(map(str, SCALES))}].")
@click.option("--crop-multiple", type=click.IntRange(min=1), default=CROP_MULTIPLE, show_default=True,
              help="Crop each HR image (top-left anchored) to multiples of this, so every LR copy is exactly HR/s.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes [default: CPU count]. Each gets CPUs/workers libvips threads.")
@click.option("--max-pixels", "--pixel-limit", "max_pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS,
              show_default=True,
              help="Refuse images declaring more pixels than this (decompression bombs), read from the header before "
                   "any memory is allocated; such an image is a failed row and the batch goes on. The crawler's "
                   "limit.")
@click.option("--strict", is_flag=True,
              help="Exit with status 1 when any image failed (failures are always listed in lowres.csv). Without "
                   "it, bad images do not change the exit status, but a failure of the machine (disk full, I/O "
                   "error, read-only folder) always exits 1.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@scheduler_option
def command(src, out, scales, crop_multiple, workers, max_pixels, strict, quiet) -> None:
    """Bicubic low-resolution copies of HR images, as for the MetH-SR test set.

    SRC is a folder of images, a CSV with an `Image file` column (paths relative to the CSV's
    folder, as in a MetH CSV: `data/<id>.jpg`), or one image. Each image is decoded once
    (EXIF orientation applied), cropped to multiples of --crop-multiple anchored top-left, and
    shrunk by every scale with the antialiased Keys cubic (a = -0.5, MATLAB imresize's
    bicubic) to lossless 8-bit PNG: DIR/X<s>/<stem>.png. Grey stays grey, RGB stays RGB;
    CMYK and 16-bit become 8-bit sRGB and alpha is dropped, with a note in DIR/lowres.csv,
    which also records each image's size, crop box, LR files, and why an image failed.
    Rerunning the same command skips finished images (each lowres.csv row carries a check of
    its files' sizes and times; a row that no longer agrees is redone). One run per DIR at a time.
    A file name that is not UTF-8 is kept on disk and shown with \\xNN escapes in lowres.csv.

    \b
    Example:  methbuild lowres MetH-SR/MetH-SR.csv --out MetH-SR/lowres
    """
    scale_list = _parse_scales(scales) if scales else SCALES
    sources = sources_from(src)
    try:
        report = build_lowres(sources, out, scales=scale_list, crop_multiple=crop_multiple, workers=workers,
                              strict=strict, progress=not quiet, max_pixels=max_pixels)
    except LowresFailures as exc:
        report = exc.report
        _summary(report, out)
        if report.environment_failures:
            click.echo(f"methbuild lowres: error: {table_text(str(exc))}", err=True)
        raise SystemExit(1) from None
    _summary(report, out)


def _summary(report, out: Path) -> None:
    for source, reason in report.failures[:20]:
        click.echo(f"failed: {table_text(source)}: {table_text(reason)}", err=True)
    if len(report.failures) > 20:
        click.echo(f"... and {len(report.failures) - 20} more failures, see {table_text(str(report.table))}", err=True)
    rate = f", {report.hr_megapixels / report.seconds:.1f} HR MP/s" if report.done and report.seconds else ""
    click.echo(f"lowres: {report.total} images: {report.done} written, {report.skipped} already complete, "
               f"{report.failed} failed; {report.hr_megapixels:.1f} MP decoded in {report.seconds:.1f} s{rate}")
    click.echo(f"written: {table_text(os.path.join(str(out), ''))} (X<s>/<stem>.png, lowres.csv)")
