"""`methbuild buckets`: shape-aware bucketing (B2B) and memory-aware batch sizes."""

from __future__ import annotations

import time
from pathlib import Path

import click

from methbuild.cli._options import scheduler_option

from methbuild.buckets.memory import DTYPE_BYTES, MODELS, human_bytes, parse_budget


class _Budget(click.ParamType):
    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_budget(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.command("buckets")
@click.argument("input", type=click.Path(path_type=Path))
@click.option("--out", type=str, default="plan", show_default=True,
              help="Output prefix: writes PREFIX.csv, PREFIX.json and PREFIX.png (a folder: FOLDER/plan.*).")
@click.option("--superbuckets", "-K", type=int, default=4, show_default=True,
              help="K: super-buckets, cut by pixel count (w·h).")
@click.option("--buckets", "-M", type=int, default=4, show_default=True,
              help="M: buckets per super-bucket, cut by aspect ratio (w/h).")
@click.option("--memory-budget", type=_Budget(), default="16GiB", show_default=True,
              help="Memory one batch may use: 16GiB, 16GB, 16000MB, 16G (binary) or bytes.")
@click.option("--model", type=click.Choice(MODELS), default="vgg16", show_default=True,
              help="Network whose activation memory sets the batch sizes.")
@click.option("--dtype", type=click.Choice(list(DTYPE_BYTES)), default="fp32", show_default=True,
              help="Precision of activations (training keeps fp32 weights and optimizer state).")
@click.option("--train", is_flag=True,
              help="Size batches for training (activations + gradients + Adam state) instead of inference.")
@click.option("--activations", type=click.Choice(["all", "live"]), default="all", show_default=True,
              help="Inference memory: every forward tensor kept (graph mode, the paper's figures) or only "
                   "those alive at once (eager frameworks, e.g. PyTorch under no_grad).")
@click.option("--max-batch", type=click.IntRange(min=1), default=None,
              help="Cap every batch size at this many images [default: no cap beyond memory].")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the heuristic's random restarts (stored in PLAN.json for BatchPlan).")
@click.option("--restarts", type=click.IntRange(min=0), default=4, show_default=True,
              help="Seeded random restarts of each aspect-ratio cut (the equal-count start is always tried).")
@click.option("--skip-unreadable", is_flag=True,
              help="Leave images without a usable size out of the plan (listed in PLAN.json) instead of failing.")
@click.option("--no-plot", is_flag=True, help="Do not draw PREFIX.png (saves one bucketing per M on the curve).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (folder headers, the padding curve) [default: CPU count].")
@click.option("--fresh", is_flag=True, help="Forget the cached header results of a folder input (.PREFIX.cache/).")
@scheduler_option
def command(input, out, superbuckets, buckets, memory_budget, model, dtype, train, activations, max_batch, seed,
            restarts, skip_unreadable, no_plot, workers, fresh) -> None:
    """Group images into K super-buckets by pixel count, then each into M buckets by aspect ratio,
    with boundaries from the B2B heuristic (equal-count start, boundaries moved while padding falls),
    and give each bucket its padded shape and the largest batch that fits --memory-budget.

    INPUT is a folder of images (headers read, cached for reruns), a MetH CSV, or any CSV/Parquet
    manifest with width and height columns.

    Writes PREFIX.csv (one row per image: path, [id], width, height, super_bucket, bucket,
    padded_width, padded_height), PREFIX.json (boundaries, padded shapes, batch sizes, padding %)
    and PREFIX.png (padding % against M: B2B, equal-count boundaries, one bucket), and prints the
    bucket table. Load the plan in training code with methbuild.buckets.BatchPlan.load(PREFIX).

    \b
    Example:  methbuild buckets meth/MetH-Medium/MetH-Medium.csv --out medium-plan \\
                  -K 4 -M 4 --memory-budget 40GB --model vgg16 --train
    """
    import shutil

    from methbuild.buckets.plan import Options, format_table, make_plan, plan_paths, usable_sizes, write_plan
    from methbuild.errors import UserError
    from methbuild.io.atomic import clean_stale_temps, ensure_writable_dir
    from methbuild.stats.inputs import is_manifest, read_sizes

    t0 = time.perf_counter()
    opts = Options(superbuckets=superbuckets, buckets=buckets, memory_budget=memory_budget, model=model,
                   dtype=dtype, train=train, activations=activations, seed=seed, max_batch=max_batch,
                   restarts=restarts, skip_unreadable=skip_unreadable)
    opts.check()
    if out.endswith(("/", "\\")) or Path(out).is_dir():
        out = str(Path(out) / "plan")
    csv_path, json_path, png_path = plan_paths(out)
    folder = ensure_writable_dir(csv_path.parent if str(csv_path.parent) else Path("."), "output folder")
    clean_stale_temps(folder)
    if not input.exists():
        raise UserError(f"input {str(input)!r} does not exist")
    cache_dir = None
    if input.is_dir():
        cache_dir = folder / f".{csv_path.stem}.cache"
        if fresh and cache_dir.exists():
            shutil.rmtree(cache_dir)
        cache_dir.mkdir(exist_ok=True)
        clean_stale_temps(cache_dir)
    elif not is_manifest(input):
        raise UserError(f"input {str(input)!r} is neither a folder nor a .csv/.parquet manifest")

    sizes = read_sizes(input, workers=workers, cache_dir=cache_dir)
    good, bad = usable_sizes(sizes, str(input), skip_unreadable)
    plan = make_plan(good, opts, input_name=str(input), excluded=bad)
    write_plan(plan, out)
    written = [csv_path.name, json_path.name]
    if not no_plot:
        from methbuild.buckets.plot import draw, padding_curve

        curve = padding_curve(good["width"].to_numpy(), good["height"].to_numpy(), superbuckets, buckets, seed=seed,
                              restarts=restarts, progress=True, workers=workers)
        draw(curve, png_path, title=f"{input.name}: {len(good)} images, K={superbuckets}")
        written.append(png_path.name)

    meta = plan.meta
    click.echo(format_table(plan))
    pad = meta["padding"]
    mode = "training" if train else f"inference, {activations} activations"
    click.echo(f"\n{meta['images']} images in {len(meta['super_buckets'])} super-bucket(s), "
               f"{len(meta['buckets'])} bucket(s), {meta['batches_per_epoch']} batches per epoch "
               f"({model}, {dtype}, {mode}, budget {human_bytes(memory_budget)})")
    click.echo(f"padding: B2B {pad['b2b']['percent']:.1f}%, equal-count {pad['equal_count']['percent']:.1f}%, "
               f"one bucket {pad['one_bucket']['percent']:.1f}% (share of padded pixels)")
    if len(bad):
        click.echo(f"left out: {len(bad)} image(s) without a usable size (listed in {json_path.name})")
    for note in meta["notes"]:
        click.echo(f"note: {note}")
    click.echo(f"time: {time.perf_counter() - t0:.1f} s (heuristic {meta['heuristic_seconds']} s)")
    click.echo(f"written: {', '.join(str(csv_path.parent / n) for n in written)}")
