"""`methbuild mirror`: a local Met Collection API for tests and the offline demo."""

from __future__ import annotations

from pathlib import Path

import click

from methbuild.cli._options import SEED, SEED_HELP, finite_float


@click.command("mirror")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--metadata", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Serve the rows of this MetObjects CSV (e.g. the real sample rows).")
@click.option("--synthetic", type=click.IntRange(min=0, max=10_000_000), default=None,
              help="Serve N synthetic Met-like records instead (drawn from the seed).")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help=f"Seed of the synthetic records, image sizes, image content and fault draws ({SEED_HELP}).")
@click.option("--faults", default=None, metavar="SPEC",
              help="Inject faults: KIND=RATE,... with kinds 429, 403 (a burst), 500, reset, truncate, html, "
                   "slow, corrupt, redirect (to a foreign host), or all=RATE (spread over the transient kinds); "
                   "parameters retry_after_s, burst_s, slow_s. Example: all=0.3,slow_s=0.5")
@click.option("--image-scale", type=finite_float(min=0.001, max=4.0), default=1.0, show_default=True,
              help="Linear factor on both sides of every image (1 = the real Met size spread; 0.1 = 100x fewer pixels).")
def command(port, metadata, synthetic, seed, faults, image_scale) -> None:
    """Serve a local mirror of the Met Collection API on 127.0.0.1 until Ctrl-C.

    Speaks /public/collection/v1/objects, /objects/{id} and /departments, serves a real JPEG
    per public-domain object (sizes drawn from the real Met spread, generated deterministically
    and cached) and the CSV it serves records from at /MetObjects.csv. It is a test double,
    never the Met: every answer carries the header X-Methbuild-Mirror: 1.

    \b
    Example:  methbuild mirror --synthetic 500 --image-scale 0.2 --faults all=0.1
              methbuild met csv --url http://127.0.0.1:8765/MetObjects.csv --out mirror.csv
    """
    from methbuild.errors import UserError
    from methbuild.met.mirror import API_PREFIX, Mirror, serve_forever

    if metadata is None and synthetic is None:
        raise UserError("give --metadata CSV or --synthetic N")
    if metadata is not None and synthetic is not None:
        raise UserError("give only one of --metadata CSV or --synthetic N")
    mirror = Mirror(metadata=metadata, synthetic=synthetic, seed=seed, faults=faults, image_scale=image_scale)

    def ready(root: str) -> None:
        public = sum(1 for r in mirror.records.values() if r.get("isPublicDomain"))
        click.echo(f"mirror: {len(mirror.records)} objects ({public} public domain), "
                   f"faults: {', '.join(f'{k}={v:g}' for k, v in mirror.faults.rates.items()) or 'none'}")
        click.echo(f"API:  {root}{API_PREFIX}")
        click.echo(f"CSV:  {root}/MetObjects.csv")
        click.echo("Ctrl-C to stop", nl=True)

    serve_forever(mirror, port, on_ready=ready)
