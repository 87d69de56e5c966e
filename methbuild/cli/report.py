"""`methbuild report`: a static page that shows a built dataset whole."""

from __future__ import annotations

from pathlib import Path

import click

from methbuild.cli._options import SEED


@click.command("report")
@click.argument("src", type=click.Path(path_type=Path), metavar="SRC")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder for index.html and its assets/ [default: SRC/report].")
@click.option("--against", multiple=True, type=click.Path(path_type=Path), metavar="OTHER",
              help="Another dataset folder to compare with (geometry rows and overlaps); repeatable.")
@click.option("--plan", type=click.Path(path_type=Path), default=None, metavar="PLAN",
              help="Show this bucket plan (the PLAN prefix of `methbuild buckets`) instead of a default 4×4 plan.")
@click.option("--per-class", type=click.IntRange(min=1, max=100), default=8, show_default=True,
              help="Thumbnails per class in the examples.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the example and sample choices.")
@click.option("--crawl", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="The crawl folder (with crawl.sqlite) that fed a MetH dataset [default: SRC/../../met/crawl "
                   "when it exists].")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes for the thumbnails [default: one per CPU for more than 24 images].")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(src, out, against, plan, per_class, seed, crawl, workers, quiet) -> None:
    """Write a static HTML page that shows the dataset SRC whole: header (version, recipe, seed,
    source, licence, counts, Croissant status), labels, seeded example thumbnails, size and aspect
    geometry, bucketing, provenance and quality, and the commands that rebuild it.

    SRC is a built MetH dataset folder (<Name>/<Name>.csv), an UltraMNIST folder, a downsampled
    ImageNet folder or a crawl folder. The page opens from the file system (no server, no script,
    no remote resource); its images are small files in DIR/assets/. Only the thumbnails are
    decoded (shrink-on-load); sizes come from the manifest or headers.

    \b
    Example:
      methbuild report datasets/MetH-Medium --against datasets/MetH-Period --out reports/medium
    """
    from methbuild.report import build_report

    res = build_report(src, out, against=against, plan=plan, per_class=per_class, seed=seed, crawl=crawl,
                       progress=not quiet, workers=workers)
    d = res.data
    click.echo(f"report of {d['title']} ({d['header']['total']:,} images): {res.files} files, "
               f"{res.bytes / 1e6:.2f} MB in {d['generated']['seconds']:.1f} s -> {res.index}")
