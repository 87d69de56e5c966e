"""`methbuild export`: a built dataset as WebDataset shards, Hugging Face Parquet, or an imagefolder."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import click

from methbuild.cli._options import bounded_int, scheduler_option

FORMATS = ("webdataset", "parquet", "imagefolder")
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6, "mib": 2**20,
          "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}


class ByteSize(click.ParamType):
    """A positive, finite number of bytes: 500MB, 1GB, 2GiB, 1G (binary) or plain bytes."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        m = _SIZE.match(str(value))
        if not m or m.group(2).lower() not in _UNITS:
            self.fail(f"{value!r} is not a size: use a number and a unit such as 500MB, 1GB, 2GiB or bytes",
                      param, ctx)
        n = float(m.group(1)) * _UNITS[m.group(2).lower()]
        if not math.isfinite(n) or n < 1:
            self.fail(f"{value!r} must be a positive, finite size", param, ctx)
        return int(n)


@click.command("export")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--to", "fmt", type=click.Choice(FORMATS), required=True,
              help="Output format: webdataset (tar shards + index.parquet), parquet (the Hugging Face Hub "
                   "layout, images embedded), imagefolder (hard links + metadata.csv).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder (created; a rerun into it keeps the shards already complete).")
@click.option("--split", "splits", default=None, metavar="S1,S2",
              help="Comma-separated splits to export, e.g. train,validation [default: every split of SRC].")
@click.option("--shard-size", type=bounded_int(1), default=10_000, show_default=True,
              help="At most this many images per shard.")
@click.option("--shard-bytes", type=ByteSize(), default="1GB", show_default=True,
              help="At most this many bytes per shard (an image bigger than this gets a shard of its own): "
                   "500MB, 1GB, 2GiB or bytes.")
@click.option("--plan", "bucket_plan", type=click.Path(path_type=Path), default=None,
              help="A PLAN.csv of `methbuild buckets` made from the same images: adds bucket and padded "
                   "shape to each sample (and to index.parquet).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Shards written at once, each by its own process [default: 1: copying is disk-bound; "
                   "more pays on fast or parallel storage]. Output is byte-identical for any value.")
@scheduler_option
def command(src, fmt, out, splits, shard_size, shard_bytes, bucket_plan, workers) -> None:
    """Export SRC to the formats training code reads, with every image's original bytes (never re-encoded).

    SRC is a built MetH dataset (its folder or <Name>.csv), an UltraMNIST folder (train.csv/test.csv)
    or a crawl folder (objects.csv, downloaded rows).

    \b
    webdataset   OUT/<name>-<split>-000000.tar: <id>.jpg|png (original bytes), <id>.json (every
                 CSV column), <id>.cls (class index); OUT/index.parquet: shard, key, offset and
                 length of each image's data, width, height, label, split, bucket.
    parquet      OUT/<split>/<split>-00000-of-0000N.parquet: image {bytes, path}, label, every CSV
                 column; loads with datasets as Image and ClassLabel.
    imagefolder  OUT/<split>/<file> (hard links) + OUT/<split>/metadata.csv (file_name, label, ...),
                 for datasets.load_dataset("imagefolder", data_dir=OUT).

    Same SRC and options give byte-identical shards; each shard appears complete or not at all, and a
    rerun keeps the shards already complete. OUT/export.json lists classes, splits and files.

    \b
    Example:  methbuild export meth/MetH-Medium --to webdataset --out shards/medium --shard-bytes 500MB
    """
    from methbuild.buckets.memory import human_bytes
    from methbuild.export import export

    split_list = None
    if splits is not None:
        split_list = [s.strip() for s in splits.split(",") if s.strip()]
        if not split_list:
            raise click.BadParameter("give at least one split name", param_hint="--split")
    res = export(src, fmt, out, splits=split_list, shard_size=shard_size, shard_bytes=shard_bytes,
                 bucket_plan=bucket_plan, workers=workers, command=" ".join(["methbuild", *sys.argv[1:]])[:300])
    plan = res.plan
    per_split = ", ".join(f"{s} {len(plan.samples[s])}" for s in plan.splits)
    rate = res.bytes_written / res.seconds / 1e6 if res.seconds > 0 else 0.0
    kind = "shard(s)" if fmt != "imagefolder" else "batch(es) of links"
    click.echo(f"exported {plan.total_samples} images of {plan.source.name} ({per_split}) as {fmt} to {out}/: "
               f"{len(plan.units)} {kind}, {res.written} written, {res.kept} kept"
               + (f", {res.removed} stale removed" if res.removed else "")
               + f"; {human_bytes(res.bytes_written)} in {res.seconds:.1f} s ({rate:.0f} MB/s)")
    click.echo(f"written: {', '.join(str(out / f) for f in res.files)}")
