"""`methbuild downsample`: ImageNet16x16 / 32x32 / 64x64 in the published batch format."""

from __future__ import annotations

from pathlib import Path

import click

from methbuild.cli._options import SEED, SEED_HELP, scheduler_option

from methbuild.downsample.pipeline import SUMMARY, IncompleteRun, Options, build
from methbuild.downsample.resize import DEFAULT_DRAFT, DEFAULT_MAX_PIXELS, METHODS, SIZES
from methbuild.io.tables import table_text
from methbuild.io.imagenet_batches import FORMATS


@click.command("downsample")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--size", type=click.Choice([str(s) for s in SIZES]), required=True,
              help="Side S of the square output images (ImageNet16x16, 32x32 or 64x64).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder for train_data_batch_1..10, val_data and downsample.json.")
@click.option("--method", type=click.Choice(list(METHODS)), default="box", show_default=True,
              help="Pillow resampling filter; box is what the released sets used.")
@click.option("--synsets", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Class map, the devkit's map_clsloc.txt ('wnid index name' lines) or one wnid per line; "
                   "labels follow it. Default: sorted train wnids numbered from 1.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="pickle", show_default=True,
              help="pickle: the published CIFAR-style pickled dicts; npz: the same arrays in .npz files.")
@click.option("--seed", type=SEED, default=0, show_default=True, help=f"Seed of the train shuffle, {SEED_HELP}.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes [default: CPU count]. The output does not depend on it.")
@click.option("--exact", is_flag=True,
              help="Pixels identical to Pillow's open → convert('RGB') → resize((S, S), method). "
                   "Default: JPEG shrink-on-load first (faster; difference measured in docs/downsample.md).")
@click.option("--draft", type=click.IntRange(min=1), default=DEFAULT_DRAFT, show_default=True,
              help="Fast mode only: JPEGs are decoded at no less than DRAFT·S pixels a side before the resize; "
                   "larger is closer to --exact and slower.")
@click.option("--max-pixels", "--pixel-limit", "max_pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS,
              show_default=True,
              help="Skip (and list) images declaring more pixels than this (decompression bombs), read from the "
                   "header before decoding. The crawler's limit.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, hidden=True,
              help="Images per task (tuning and tests).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@scheduler_option
def command(src, size, out, method, synsets, fmt, seed, workers, exact, draft, max_pixels, chunk_size, quiet) -> None:
    """Downsample ImageNet to S×S (aspect ratio not kept) in the format of Chrabaszcz et al. 2017.

    SRC holds train/<wnid>/* and val/<wnid>/* (the ILSVRC-2012 layout, validation images
    sorted into class folders). Writes DIR/train_data_batch_1..10 (shuffled with the seed;
    batches 1–9 hold n//10 images, 10 the rest) and DIR/val_data: dicts with 'data' (uint8,
    N × 3·S·S, channel-planar rows), 'labels' (1-based ints) and, in train batches, 'mean'
    (float64 over all train images); with --format npz the same arrays as .npz files.
    CMYK, greyscale and non-JPEG files are converted; unreadable or truncated files are
    skipped and listed in DIR/downsample.json. Memory stays bounded by one batch; a work
    file as large as the output lives in DIR/.downsample-work until the end. Rerunning the
    same command resumes an interrupted run (every finished chunk of the work file is checked
    against its CRC first; a damaged one is redone). One run per DIR at a time; a full disk is
    one line and exit 1, and the rerun resumes.

    \b
    Example:  methbuild downsample /data/ILSVRC2012 --size 32 --out imagenet32 \\
                  --synsets map_clsloc.txt
    """
    opts = Options(src=src, out=out, size=int(size), method=method, fmt=fmt, seed=seed, workers=workers,
                   exact=exact, draft=draft, synsets=synsets, chunk_size=chunk_size, progress=not quiet,
                   max_pixels=max_pixels)
    try:
        s = build(opts)
    except IncompleteRun as exc:
        raise SystemExit(f"methbuild downsample: {exc}") from None
    shown = table_text(str(out))  # an output folder whose name is not UTF-8: \xNN escapes on the terminal
    if s.get("already_complete"):
        click.echo(f"{shown}/ is already complete for these options ({SUMMARY}); nothing to do")
    tr = s["splits"]["train"]
    rows = tr["batch_rows"]
    click.echo(f"train: {tr['images']:,} images in 10 batches ({rows[0]:,} × 9 + {rows[-1]:,})"
               + (f", {tr['skipped']} skipped" if tr["skipped"] else ""))
    if "val" in s["splits"]:
        va = s["splits"]["val"]
        click.echo(f"val: {va['images']:,} images" + (f", {va['skipped']} skipped" if va["skipped"] else ""))
    else:
        click.echo("val: no val/ folder in SRC, val_data not written")
    click.echo(f"classes: {s['classes']} (labels {s['labels']}); mean R/G/B {s['mean_rgb']}")
    odd = {k: v for k, v in s["kinds"].items() if k not in ("JPEG/RGB",)}
    if odd:
        click.echo("converted: " + ", ".join(f"{v} {k}" for k, v in odd.items()))
    mode = "exact Pillow" if s["config"]["exact"] else f"fast (JPEG draft ≥ {s['config']['draft']}·S)"
    click.echo(f"resize: {s['config']['method']}, {mode}; {s['resize_seconds']} s, {s['images_per_second']} images/s "
               f"on {s['workers']} worker(s)" + (" (resumed)" if s["resumed"] else ""))
    click.echo(f"written: {shown}/ ({len(s['files'])} files, {s['bytes'] / 1e6:,.1f} MB, {SUMMARY})")
    if s["skipped"]:
        for f in s["skipped"][:20]:
            click.echo(f"skipped: {table_text(f['file'])}: {table_text(f['error'])}", err=True)
        more = len(s["skipped"]) - 20
        click.echo(f"{len(s['skipped'])} unreadable file(s) skipped" + (f" ({more} more)" if more > 0 else "")
                   + f"; all listed in {shown}/{SUMMARY}", err=True)
