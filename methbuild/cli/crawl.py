"""`methbuild crawl`: fetch Met records and original images, politely and resumably."""

from __future__ import annotations

from pathlib import Path

import click

from methbuild.cli._options import scheduler_option

from methbuild.errors import UserError


@click.command("crawl")
@click.option("--ids", "ids_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File of object IDs, one per line (blank lines and # comments ignored).")
@click.option("--metadata", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A MetObjects CSV: crawl the objects of its rows (instead of --ids).")
@click.option("--public-domain-only", is_flag=True,
              help="With --metadata: only rows whose 'Is Public Domain' is True.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Crawl at most the first N IDs (after --public-domain-only).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: images/<objectID>.<ext>, crawl.sqlite (resume state), objects.parquet/.csv.")
@click.option("--api-url", default=None, metavar="URL",
              help="Collection API base URL [default: https://collectionapi.metmuseum.org/public/collection/v1].")
@click.option("--concurrency", type=click.IntRange(min=1, max=256), default=16, show_default=True,
              help="Objects in flight at once (caps open connections and memory: ~1 MiB each).")
@click.option("--api-rate", type=click.FloatRange(min=0.01, max=80), default=10.0, show_default=True,
              help="Maximum API requests per second (adaptive: halves on 403/429/5xx/HTML, recovers slowly). "
                   "The Met documents 80/s; its firewall blocks bursts well below that.")
@click.option("--image-rate", type=click.FloatRange(min=0.01), default=20.0, show_default=True,
              help="Maximum image requests per second per image host (adaptive like --api-rate).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="HOST",
              help="Also accept images from HOST (repeatable). Always allowed: images.metmuseum.org and the "
                   "--api-url host.")
@click.option("--retries", type=click.IntRange(min=0), default=6, show_default=True,
              help="Retries per object for transient failures in one run (exponential back-off with jitter).")
@click.option("--retry-base", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="First back-off in seconds; doubles per retry (capped at 60 s), or longer if Retry-After says so.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Seconds to wait for a connection or for the next bytes of a response; an image body "
                   "that delivers nothing for this long is closed within twice it and retried.")
@click.option("--pixel-limit", type=click.IntRange(min=1), default=300_000_000, show_default=True,
              help="Refuse images with more pixels than this (decompression bombs), read from the header.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@scheduler_option
def command(ids_file, metadata, public_domain_only, limit, out, api_url, concurrency, api_rate, image_rate,
            allow_hosts, retries, retry_base, timeout, pixel_limit, quiet) -> int:
    """Crawl Met objects: each record from the Collection API, then its original image.

    Images stream to DIR/images/<objectID>.<ext> (temporary name, length and header checked,
    fsynced, renamed); the state lives in DIR/crawl.sqlite and DIR/objects.parquet and
    DIR/objects.csv (object_id,status,image_file,width,height,bytes,sha256,url,error) are
    exported at the end. Rerun the same command to resume: finished objects are never fetched
    again, transient failures are retried, more IDs are added.

    Exit status: 0 when every object reached a final state (downloaded, not found, not public
    domain, no image, refused), 1 when transient failures remain (rerun), 2 for a user error.

    \b
    Example:  methbuild crawl --metadata met/MetObjects.csv --public-domain-only --limit 1000 --out met/crawl
    """
    from methbuild.met.crawl import DEFAULT_API_URL, crawl, read_ids

    if (ids_file is None) == (metadata is None):
        raise UserError("give exactly one of --ids FILE or --metadata CSV")
    if public_domain_only and metadata is None:
        raise UserError("--public-domain-only needs --metadata")
    if ids_file is not None:
        ids = read_ids(ids_file)
    else:
        from methbuild.met.metadata import read_met_csv

        df = read_met_csv(metadata, usecols=("Object ID", "Is Public Domain"))
        if public_domain_only:
            df = df[df["Is Public Domain"]]
        ids = list(dict.fromkeys(int(i) for i in df["Object ID"]))
    if limit is not None:
        ids = ids[:limit]
    report = crawl(ids, out, api_url=api_url or DEFAULT_API_URL, concurrency=concurrency, api_rate=api_rate,
                   image_rate=image_rate, allow_hosts=allow_hosts, retries=retries, retry_base=retry_base,
                   timeout=timeout, pixel_limit=pixel_limit, progress=not quiet)
    click.echo(report.summary())
    click.echo(f"written: {out}/ (images/, crawl.sqlite, objects.parquet, objects.csv)")
    if report.exit_code:
        click.echo(f"{report.unfinished} object(s) still have transient failures; rerun the same command "
                   "to retry them", err=True)
    return report.exit_code
