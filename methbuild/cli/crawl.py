"""`methbuild crawl`: fetch Met records and original images, politely and resumably."""

from __future__ import annotations

from pathlib import Path

import click

from methbuild.cli._options import bounded_int, finite_float, scheduler_option

from methbuild.errors import UserError


@click.command("crawl")
@click.option("--ids", "ids_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File of object IDs, one per line (blank lines and # comments ignored).")
@click.option("--metadata", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A MetObjects CSV: crawl the objects of its rows (instead of --ids).")
@click.option("--public-domain-only", is_flag=True,
              help="With --metadata: only rows whose 'Is Public Domain' is True.")
@click.option("--limit", type=bounded_int(1), default=None,
              help="Crawl at most the first N IDs (after --public-domain-only).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: images/<objectID>.<ext>, crawl.sqlite (resume state), objects.parquet/.csv.")
@click.option("--api-url", default=None, metavar="URL",
              help="Collection API base URL [default: https://collectionapi.metmuseum.org/public/collection/v1].")
@click.option("--concurrency", type=click.IntRange(min=1, max=256), default=16, show_default=True,
              help="Objects in flight at once (caps open connections and memory: ~1 MiB each).")
@click.option("--api-rate", type=finite_float(min=0.01, max=80), default=10.0, show_default=True,
              help="Maximum API requests per second (adaptive: halves on 403/429/5xx/HTML, recovers slowly). "
                   "The Met documents 80/s; its firewall blocks bursts well below that.")
@click.option("--image-rate", type=finite_float(min=0.01, max=10_000), default=20.0, show_default=True,
              help="Maximum image requests per second per image host (adaptive like --api-rate).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="HOST",
              help="Also accept images from HOST (repeatable). Always allowed: images.metmuseum.org and the "
                   "--api-url host.")
@click.option("--retries", type=bounded_int(0, 1000), default=6, show_default=True,
              help="Retries per object for transient failures in one run (exponential back-off with jitter).")
@click.option("--retry-base", type=finite_float(min=0, max=3600), default=1.0, show_default=True,
              help="First back-off in seconds; doubles per retry (capped at 60 s), or longer if Retry-After says so.")
@click.option("--timeout", type=finite_float(min=0.1, max=3600), default=60.0, show_default=True,
              help="Seconds allowed for a connection, for the headers of a response and for a whole API record "
                   "(a record is at most 4 MB); an image body is watched over windows of this length (see "
                   "--min-speed) and closed within twice it when it stalls or trickles, then retried.")
@click.option("--min-speed", type=finite_float(min=0, max=1 << 20), default=16.0, show_default=True,
              help="KiB/s an image body must keep up over every --timeout window; a slower one (a stalled or "
                   "trickling server) is closed and retried. 0: only a body that sends nothing is closed.")
@click.option("--pixel-limit", type=bounded_int(1), default=300_000_000, show_default=True,
              help="Refuse images with more pixels than this (decompression bombs), read from the header.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@scheduler_option
def command(ids_file, metadata, public_domain_only, limit, out, api_url, concurrency, api_rate, image_rate,
            allow_hosts, retries, retry_base, timeout, min_speed, pixel_limit, quiet) -> int:
    """Crawl Met objects: each record from the Collection API, then its original image.

    Images stream to DIR/images/<objectID>.<ext> (temporary name, length and header checked,
    fsynced, renamed); the state lives in DIR/crawl.sqlite and DIR/objects.parquet and
    DIR/objects.csv (object_id,status,image_file,width,height,bytes,sha256,url,error) are
    exported at the end. Rerun the same command to resume: finished objects are never fetched
    again, transient failures are retried, more IDs are added, objects refused for their image
    host are tried again if --allow-host now allows it. A resumed run checks the state it finds
    (a damaged record is fetched again; a file is adopted only at the length its server
    announced). One run per DIR at a time: a second one exits 2 naming the first.

    A record that is malformed (wrong field types, isPublicDomain not a JSON boolean), larger
    than 4 MB decoded or nested absurdly deep is final as "bad record". Images are requested
    uncompressed; whatever arrives is capped at 2 GiB.

    Exit status: 0 when every object reached a final state (downloaded, not found, not public
    domain, no image, refused, bad record), 1 when transient failures remain (rerun) or the
    disk is full (free space, rerun), 2 for a user error.

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
        if not ids:
            raise UserError(f"ID file {str(ids_file)!r} lists no object IDs")
    else:
        from methbuild.met.metadata import read_met_csv

        df = read_met_csv(metadata, usecols=("Object ID", "Is Public Domain"))
        if public_domain_only:
            df = df[df["Is Public Domain"]]
        ids = list(dict.fromkeys(int(i) for i in df["Object ID"]))
        if not ids:
            raise UserError(f"{str(metadata)!r} has no rows to crawl" + (" that are public domain"
                                                                        if public_domain_only else ""))
    if limit is not None:
        ids = ids[:limit]
    report = crawl(ids, out, api_url=api_url or DEFAULT_API_URL, concurrency=concurrency, api_rate=api_rate,
                   image_rate=image_rate, allow_hosts=allow_hosts, retries=retries, retry_base=retry_base,
                   timeout=timeout, min_speed=min_speed * 1024, pixel_limit=pixel_limit, progress=not quiet)
    click.echo(report.summary())
    click.echo(f"written: {out}/ (images/, crawl.sqlite, objects.parquet, objects.csv)")
    if report.exit_code:
        click.echo(f"{report.unfinished} object(s) still have transient failures; rerun the same command "
                   "to retry them", err=True)
    return report.exit_code
