"""`methbuild build`: build a MetH dataset from its recipe, or rebuild one from a manifest."""

from __future__ import annotations

from pathlib import Path

import click

from methbuild.cli._options import MAX_WORKERS, SEED, SEED_HELP, WORKERS, finite_float, scheduler_option
from methbuild.errors import UserError


MAX_SCALE = 100.0  # a hundred times the published sizes is already more than the Met holds


@click.command("build")
@click.argument("name", required=False, metavar="[NAME]")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Rebuild exactly the dataset this manifest describes (a built <Name>.csv, a file in manifests/, "
                   "or a published MetH CSV with ID / Label / Split columns) instead of a recipe. Every ID once, "
                   "at least one row.")
@click.option("--name", "dataset_name", default=None, metavar="NAME",
              help="With --manifest: the dataset's name, used as its folder <out>/<NAME>/ and file names "
                   "[default: the manifest's file name without its extension]. A plain folder name: letters, "
                   "digits, '.', '-', '_', starting with a letter or digit.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Datasets folder: writes <out>/<Name>/<Name>.csv, data/, README.md, croissant.json. "
                   "One build per --out at a time.")
@click.option("--met", type=click.Path(file_okay=False, path_type=Path), default=Path("met"), show_default=True,
              help="Met working folder: MetObjects.csv (downloaded when missing) and the crawl state in crawl/, "
                   "shared by every build so no image is fetched twice.")
@click.option("--metadata", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A MetObjects CSV to select from [default: <met>/MetObjects.csv].")
@click.option("--api-url", default=None, metavar="URL",
              help="Collection API base URL [default: the real Met API] (e.g. a `methbuild mirror`).")
@click.option("--seed", type=SEED, default=None,
              help=f"Selection seed, {SEED_HELP} [default: the recipe's pinned seed].")
@click.option("--scale", type=finite_float(min=0, min_open=True, max=MAX_SCALE), default=1.0, show_default=True,
              help=f"Multiply every split size (e.g. 0.01 for a demo); 1 = the published sizes, at most {MAX_SCALE:g}.")
@click.option("--workers", type=WORKERS, default=None,
              help=f"Worker processes for image work (MetH-SR's low-resolution copies), at most {MAX_WORKERS} "
                   "[default: CPU count].")
@click.option("--concurrency", type=click.IntRange(min=1, max=256), default=16, show_default=True,
              help="Crawler: objects in flight at once.")
@click.option("--api-rate", type=finite_float(min=0.01, max=80), default=10.0, show_default=True,
              help="Crawler: maximum API requests per second (adaptive).")
@click.option("--sr-pairs", is_flag=True,
              help="meth-sr: also write the test set as BasicSR paired folders in <Name>/sr/ (GT/, LRbicx<s>/, "
                   "meta_info.txt; LR x s = GT exactly), as `methbuild sr pairs` does. Costs a PNG copy of "
                   "every test HR image.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@scheduler_option
def command(name, manifest, dataset_name, out, met, metadata, api_url, seed, scale, workers, concurrency, api_rate,
            sr_pairs, quiet) -> int:
    """Build a MetH dataset: meth-medium, meth-cultures, meth-period or meth-sr.

    Selects candidates per class from the metadata alone (public domain, label rule),
    crawls only those (resumable; rerun the same command after an interruption), keeps
    originals of at least 500x500 (more than 12 MP for SR), splits exactly and stratified
    by the seed, and writes the published layout with a dataset card and Croissant metadata.

    \b
    Examples:
      methbuild build meth-medium --out datasets
      methbuild build meth-sr --out datasets --scale 0.01 --api-url http://127.0.0.1:8765/public/collection/v1
      methbuild build --manifest manifests/MetH-Medium.csv --out datasets
    """
    import recipes
    from methbuild.build import BuildOptions, TransientCrawlFailures, build_from_manifest, build_recipe
    from methbuild.met.crawl import DEFAULT_API_URL

    if bool(name) == bool(manifest):
        raise UserError("give a recipe NAME or --manifest FILE (one of them); "
                        f"recipes: {', '.join(recipes.all_recipes())}")
    if dataset_name is not None and not manifest:
        raise UserError("--name goes with --manifest (a recipe's dataset has its published name)")
    opts = BuildOptions(out=out, met=met, metadata=metadata, api_url=api_url or DEFAULT_API_URL, scale=scale,
                        workers=workers, progress=not quiet, sr_pairs=sr_pairs,
                        crawl_args={"concurrency": concurrency, "api_rate": api_rate})
    try:
        if manifest:
            result = build_from_manifest(manifest, opts, name=dataset_name)
        else:
            result = build_recipe(recipes.get(name, seed=seed), opts)
    except TransientCrawlFailures as exc:
        click.echo(f"methbuild build: {exc}", err=True)
        return 1
    splits = ", ".join(f"{s} {result.counts.get(s, 0)}" for s in ("train", "validation", "test") if result.counts.get(s))
    click.echo(f"{result.name}: {splits} images -> {result.folder}/")
    click.echo(f"  {result.csv.name}, data/, README.md, croissant.json; crawled {result.crawled} candidate(s) "
               f"in {result.rounds} round(s)")
    if result.lowres is not None:
        lr = result.lowres
        click.echo(f"  lowres/: x2/x4/x8/x16 of {lr.total} test image(s) ({lr.failed} failed)")
    if result.sr_pairs is not None:
        sp = result.sr_pairs
        click.echo(f"  sr/: GT/ and LRbicx<s>/ pairs of {sp.total} test image(s) ({sp.failed} failed)")
    return 0
