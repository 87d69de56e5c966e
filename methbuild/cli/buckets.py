"""`methbuild buckets`: shape-aware bucketing (B2B) and memory-aware batch sizes."""

from __future__ import annotations

import time
from pathlib import Path

import click

from methbuild.cli._options import SEED, SEED_HELP, finite_float, scheduler_option

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


class _Percent(click.ParamType):
    """A percentage: ``8%`` or ``8`` (finite, checked by the shared float type)."""

    name = "PERCENT"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        text = str(value).strip().removesuffix("%")
        return finite_float(0, 100, min_open=True, max_open=True).convert(text, param, ctx)


class _Area(click.ParamType):
    """Pixels: ``1MP`` (2**20, as the 1024² buckets of diffusion training), ``0.5MP``, ``1024x1024`` or a number."""

    name = "AREA"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if "x" in text:
            a, _, b = text.partition("x")
            a, b = a.strip(), b.strip()
            if a.isascii() and b.isascii() and a.isdigit() and b.isdigit() and 0 < int(a) <= 10**6 >= int(b) > 0:
                return int(a) * int(b)
            self.fail(f"cannot read {value!r}: use WIDTHxHEIGHT such as 1024x1024", param, ctx)
        scale = 1
        if text.endswith("mp"):
            text, scale = text[:-2], 2**20
        number = finite_float(0, 10**12 / scale, min_open=True).convert(text, param, ctx)
        return max(1, int(number * scale))


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
@click.option("--batch", type=click.IntRange(min=1, max=10**6), default=None,
              help="A fixed batch size for every bucket [default: the largest that fits --memory-budget, capped by "
                   "--max-batch].")
@click.option("--world-size", type=click.IntRange(min=1, max=10**5), default=1, show_default=True,
              help="Ranks (GPUs) that train together: with --last merge every bucket holds at least batch × "
                   "world-size images; BatchPlan.for_rank gives every rank the same number of batches.")
@click.option("--last", type=click.Choice(["merge", "short", "pad", "drop"]), default="merge", show_default=True,
              help="Buckets and remainders smaller than batch × world-size: merge (a bucket under it is merged "
                   "with the neighbour that raises padding least; remainders become shorter batches), short "
                   "(shorter batches, no merging), pad (batches filled with repeats of the same bucket), drop "
                   "(left out of that epoch).")
@click.option("--max-padding", type=_Percent(), default=None,
              help="Choose K × M itself: the smallest grid whose padding is at most this share (e.g. 8%), with "
                   "every bucket holding --min-bucket images (-K/-M ignored).")
@click.option("--min-bucket", type=click.IntRange(min=1, max=10**9), default=None,
              help="Fewest images a (non-outlier) bucket may hold [default: 32 with --max-padding, else 1].")
@click.option("--outliers", type=str, default="auto", show_default=True,
              help="Images given bucket(s) of their own, exempt from the minimum fill: auto (aspect>4,aspect<0.25,"
                   "mp>60), none, or conditions such as 'aspect>3,mp>40,width>20000'.")
@click.option("--mode", type=click.Choice(["native", "resize"]), default="native", show_default=True,
              help="native: pad each image to its bucket's largest width and height. resize: aspect buckets at a "
                   "fixed --area; each image is resized to cover its bucket and centre-cropped (crop box in "
                   "PLAN.csv).")
@click.option("--area", type=_Area(), default="1MP", show_default=True,
              help="resize mode: pixels per bucket (1MP = 1024², 0.375MP, 768x512, or a number).")
@click.option("--step", type=click.IntRange(min=1, max=4096), default=64, show_default=True,
              help="resize mode: bucket sides are multiples of this.")
@click.option("--no-upscale", is_flag=True,
              help="resize mode: an image smaller than its bucket keeps its size (rounded down to --step).")
@click.option("--strict", is_flag=True,
              help="Exit 1 when the plan has problems (a bucket where one image does not fit the budget, a bucket "
                   "smaller than one batch per rank); the plan is written either way.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help=f"Seed of the heuristic's random restarts and of BatchPlan's order ({SEED_HELP}).")
@click.option("--restarts", type=click.IntRange(min=0), default=4, show_default=True,
              help="Seeded random restarts of each aspect-ratio cut (the equal-count start is always tried).")
@click.option("--skip-unreadable", is_flag=True,
              help="Leave images without a usable size out of the plan (listed in PLAN.json) instead of failing.")
@click.option("--no-plot", is_flag=True, help="Do not draw PREFIX.png (saves one bucketing per M on the curve).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (folder headers, the padding curve) [default: CPU count].")
@click.option("--fresh", is_flag=True, help="Forget the cached header results of a folder input (.PREFIX.cache/).")
@scheduler_option
def command(input, out, superbuckets, buckets, memory_budget, model, dtype, train, activations, max_batch, batch,
            world_size, last, max_padding, min_bucket, outliers, mode, area, step, no_upscale, strict, seed,
            restarts, skip_unreadable, no_plot, workers, fresh) -> None:
    """Group images into K super-buckets by pixel count, then each into M buckets by aspect ratio,
    with boundaries from the B2B heuristic (equal-count start, boundaries moved while padding falls),
    and give each bucket its padded shape and the largest batch that fits --memory-budget.

    INPUT is a folder of images (headers read, cached for reruns), a MetH CSV, or any CSV/Parquet
    manifest with width and height columns.

    Writes PREFIX.csv (one row per image: path, [id], width, height, super_bucket, bucket,
    padded_width, padded_height), PREFIX.json (boundaries, padded shapes, batch sizes, padding %)
    and PREFIX.png (padding % against M: B2B, equal-count boundaries, one bucket), and prints the
    bucket table. Load the plan in training code with methbuild.buckets.BatchPlan.load(PREFIX);
    BatchPlan.for_rank(rank, world_size, epoch) gives each rank its batches.

    A bucket where not even one image fits --memory-budget is kept in the plan with batch 0 and
    "does not fit: needs X" (the budget it needs, or the downscale factor that fits); the command
    still exits 0 unless --strict. --max-padding 8% picks the number of buckets itself.

    \b
    Example:  methbuild buckets meth/MetH-Medium/MetH-Medium.csv --out medium-plan \\
                  -K 4 -M 4 --memory-budget 40GB --model vgg16 --train
    """
    import shutil

    from methbuild.buckets.plan import Options, format_table, make_plan, plan_paths, usable_sizes, write_plan
    from methbuild.errors import UserError
    from methbuild.io.atomic import clean_stale_temps, ensure_writable_dir
    from methbuild.io.lock import folder_lock
    from methbuild.stats.inputs import is_manifest, read_sizes

    t0 = time.perf_counter()
    opts = Options(superbuckets=superbuckets, buckets=buckets, memory_budget=memory_budget, model=model,
                   dtype=dtype, train=train, activations=activations, seed=seed, max_batch=max_batch,
                   restarts=restarts, skip_unreadable=skip_unreadable, batch=batch, world_size=world_size,
                   last=last, max_padding=max_padding, min_bucket=min_bucket, outliers=outliers, mode=mode,
                   area=area, step=step, upscale=not no_upscale)
    opts.check()
    if out.endswith(("/", "\\")) or Path(out).is_dir():
        out = str(Path(out) / "plan")
    csv_path, json_path, png_path = plan_paths(out)
    folder = ensure_writable_dir(csv_path.parent if str(csv_path.parent) else Path("."), "output folder")
    if not input.exists():
        raise UserError(f"input {str(input)!r} does not exist")
    if not input.is_dir() and not is_manifest(input):
        raise UserError(f"input {str(input)!r} is neither a folder nor a .csv/.parquet manifest")
    with folder_lock(folder):  # one run per output folder: the header cache and PLAN files are shared state
        clean_stale_temps(folder)
        cache_dir = None
        if input.is_dir():
            cache_dir = folder / f".{csv_path.stem}.cache"
            if fresh and cache_dir.exists():
                shutil.rmtree(cache_dir)
            cache_dir.mkdir(exist_ok=True)
            clean_stale_temps(cache_dir)
            root, rule = str(input.resolve()), "folder"
        else:
            root, rule = str(input.resolve().parent), "manifest"

        if cache_dir is None:
            from methbuild.buckets.plan import manifest_sizes_exact

            sizes = manifest_sizes_exact(input)
        else:
            sizes = read_sizes(input, workers=workers, cache_dir=cache_dir)
        good, bad = usable_sizes(sizes, str(input), skip_unreadable)
        plan = make_plan(good, opts, input_name=str(input), excluded=bad, image_root=root, image_rule=rule)
        write_plan(plan, out)
        written = [csv_path.name, json_path.name]
        if not no_plot and mode == "native":
            from methbuild.buckets.plot import draw, padding_curve

            curve = padding_curve(good["width"].to_numpy(), good["height"].to_numpy(), plan, seed=seed,
                                  restarts=restarts, workers=workers)
            draw(curve, png_path, title=f"{input.name}: {len(good)} images, K={curve.superbuckets}")
            written.append(png_path.name)

    meta = plan.meta
    click.echo(format_table(plan))
    pad = meta["padding"]
    mode_text = "training" if train else f"inference, {activations} activations"
    s = meta["settings"]
    click.echo(f"\n{meta['images']} images in {len(meta['super_buckets'])} super-bucket(s), "
               f"{len(meta['buckets'])} bucket(s) (K={s['superbuckets']}, M={s['buckets']}), "
               f"{meta['batches_per_rank']} batches per epoch per rank × {world_size} rank(s) "
               f"({model}, {dtype}, {mode_text}, budget {human_bytes(memory_budget)})")
    if mode == "resize":
        r = meta["resize"]
        click.echo(f"resize: mean aspect error {r['mean_aspect_error_percent']:.2f}%, cropped "
                   f"{r['cropped_percent_of_pixels']:.1f}% of pixels, {r['upscaled_images']} image(s) upscaled")
    else:
        click.echo(f"padding: plan {pad['b2b']['percent']:.1f}% ({meta['boundaries']} boundaries), equal-count "
                   f"{pad['equal_count']['percent']:.1f}% ({pad['equal_count']['grid']}), one bucket "
                   f"{pad['one_bucket']['percent']:.1f}% (share of padded pixels); smallest regular bucket "
                   f"{pad['smallest_regular_bucket']} image(s)")
    outl = [x for x in meta["super_buckets"] if x["outlier"]]
    if outl:
        click.echo("outliers: " + ", ".join(f"{x['images']} with {x['outlier']}" for x in outl)
                   + " (own buckets, exempt from the fill)")
    if len(bad):
        click.echo(f"left out: {len(bad)} image(s) without a usable size (listed in {json_path.name})")
    for note in meta["notes"]:
        click.echo(f"note: {note}")
    nofit = [b for b in meta["buckets"] if b["batch_size"] == 0]
    if nofit:
        worst = max(nofit, key=lambda b: b["bytes_per_image"] + b["bytes_fixed"])
        click.echo(f"does not fit: {len(nofit)} bucket(s), {meta['unscheduled_images']} image(s), not even one image "
                   f"within {human_bytes(memory_budget)} (batch 0, left out of BatchPlan); the worst "
                   f"{worst['status'][len('does not fit: '):]}")
    for p in plan.problems[:20]:
        click.echo(f"problem: {p}")
    if len(plan.problems) > 20:
        click.echo(f"problem: ... and {len(plan.problems) - 20} more (in {json_path.name})")
    click.echo(f"time: {time.perf_counter() - t0:.1f} s (heuristic {meta['heuristic_seconds']} s)")
    click.echo(f"written: {', '.join(str(csv_path.parent / n) for n in written)}")
    if strict and plan.problems:
        click.echo(f"--strict: {len(plan.problems)} problem(s) in the plan", err=True)
        raise SystemExit(1)
