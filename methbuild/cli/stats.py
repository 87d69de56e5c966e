"""`methbuild stats`: size and aspect-ratio statistics, the MetH comparison figure, dataset overlaps."""

from __future__ import annotations

import math
from pathlib import Path

import click

from methbuild.cli._options import SEED, SEED_HELP, scheduler_option
from methbuild.io.tables import table_text

from methbuild.stats.collect import DEFAULT_SAMPLE, GROUPS, collect
from methbuild.stats.overlap import OVERLAP_BY

MAX_PROBLEMS_SHOWN = 10


def _fmt(v, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _pct(v) -> str:
    return "-" if v is None or math.isnan(v) else f"{100 * v:.1f}%"


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    click.echo(line(header))
    for r in rows:
        click.echo(line(r))


@click.command("stats")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...",
                type=click.Path(exists=True, path_type=Path))
@click.option("--name", "names", multiple=True, metavar="NAME",
              help="Name of each input, once per INPUT in the same order [default: the folder or file name].")
@click.option("--group", "groups", multiple=True, type=click.Choice(GROUPS),
              help="Group of each input, once per INPUT: reference rows go above the dashed line, meth rows below "
                   "[default: meth when the name starts with 'MetH', else reference].")
@click.option("--sample", type=click.IntRange(min=0), default=DEFAULT_SAMPLE, show_default=True,
              help="Images drawn per input (seeded, before any header is read), as in the paper; 0 = all images.")
@click.option("--seed", type=SEED, default=0, show_default=True, help=f"Seed of the samples, {SEED_HELP}.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("stats"), show_default=True,
              help="Output folder: images.parquet, summary.csv, problems.csv, figure.png/.svg, overlap.csv.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes for reading headers and hashing [default: automatic: this process when "
                   "the files read fast (warm cache), else one per CPU]. Results do not depend on it.")
@click.option("--overlap-by", type=click.Choice(OVERLAP_BY), default="id", show_default=True,
              help="How images are matched across inputs: id = a manifest's ID column or a file name without "
                   "extension (MetH files are <objectID>.jpg); name = file name without extension; "
                   "sha256 = file content (reads every file).")
@click.option("--no-figure", is_flag=True, help="Do not draw figure.png/figure.svg.")
@click.option("--fresh", is_flag=True,
              help="Forget cached header results in DIR/.cache (after images changed under the same names).")
@scheduler_option
def command(inputs, names, groups, sample, seed, out, workers, overlap_by, no_figure, fresh) -> None:
    """Size and aspect-ratio statistics of image collections, with the MetH comparison figure and
    dataset overlaps (paper 000, Figure 2 and Table 1).

    An INPUT is a folder of images (searched recursively: JPEG, PNG, TIFF, WebP, BMP, GIF) or a
    CSV/Parquet manifest with width and height columns (a MetH CSV, a crawl manifest). Sizes come from
    file headers only, EXIF orientation applied. Unreadable, truncated and non-image files, symlink
    loops and unreadable folders are counted and listed in DIR/problems.csv, never fatal.

    Writes DIR/images.parquet (one row per sampled image), DIR/summary.csv (per input: counts,
    megapixels and aspect-ratio quantiles and mean, portrait share, share >= 500x500),
    DIR/figure.png and figure.svg, and with two or more inputs DIR/overlap.csv (for each ordered pair,
    the % of the first's images also in the second). Rerunning resumes from DIR/.cache (a cached
    result whose length or checksum does not agree is read again). One run per DIR at a time.
    A file name that is not UTF-8 is shown with \\xNN escapes; a size beyond 2^31-1 pixels a side
    (a manifest's 1e30, a forged header) is a listed problem.

    \b
    Example:
      methbuild stats imagenet/train coco/ MetH-Medium/MetH-Medium.csv \\
          --name ImageNet --name COCO --name MetH-Medium --sample 100000 --out stats
    """
    report = collect(inputs, names=names, groups=groups, sample=sample or None, seed=seed, out=out, workers=workers,
                     overlap_by=overlap_by, figure=not no_figure, fresh=fresh)
    s = report.summary
    header = ["input", "group", "listed", "images", "unread", "trunc", "MP min", "MP median", "MP mean", "MP max",
              "AR Q1", "AR median", "AR Q3", "portrait", ">=500²"]
    rows = [[r.input, r.group, f"{r.listed:,}", f"{r.images:,}", f"{r.unreadable:,}", f"{r.truncated:,}",
             _fmt(r.mp_min, ".2f"), _fmt(r.mp_median, ".2f"), _fmt(r.mp_mean, ".2f"), _fmt(r.mp_max, ".2f"),
             _fmt(r.ar_q1, ".2f"), _fmt(r.ar_median, ".2f"), _fmt(r.ar_q3, ".2f"),
             _pct(r.portrait_share), _pct(r.share_ge_500x500)]
            for r in s.itertuples()]
    click.echo()
    _print_table(header, rows)
    if report.overlap is not None:
        click.echo(f"\noverlap by {overlap_by} (% of input 1's images also in input 2):")
        _print_table(["input 1", "input 2", "images 1", "also in 2", "%"],
                     [[r.input_1, r.input_2, f"{r.images_1:,}", f"{r.also_in_2:,}", _fmt(r.percent, ".2f")]
                      for r in report.overlap.itertuples()])
    probs = report.problems
    if len(probs):
        click.echo(f"\n{len(probs):,} problem(s) (all in {table_text(str(out / 'problems.csv'))}):")
        for r in probs.head(MAX_PROBLEMS_SHOWN).itertuples():
            click.echo(f"  {r.input}: {r.path}: {r.problem}")
        if len(probs) > MAX_PROBLEMS_SHOWN:
            click.echo(f"  ... and {len(probs) - MAX_PROBLEMS_SHOWN:,} more")
    click.echo(f"\nwritten: {', '.join(table_text(str(p)) for p in report.written)}")
