"""`methbuild met`: the Met's open-access metadata."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("met")
def command() -> None:
    """The Metropolitan Museum's open-access metadata (MetObjects.csv)."""


@command.command("csv")
@click.option("--url", default=None, metavar="URL",
              help="Where to download MetObjects.csv from [default: the Met's openaccess repository, "
                   "Git LFS media URL]. A local mirror serves it at http://127.0.0.1:PORT/MetObjects.csv.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("met/MetObjects.csv"),
              show_default=True, help="Where to write the CSV (written under a temporary name, then renamed).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def csv_command(url, out, quiet) -> None:
    """Download MetObjects.csv (~318 MB, ~480k rows, CC0), check it and report its rows.

    The download streams to a temporary file beside OUT; its size is checked against
    Content-Length (a body longer than announced, or above 2 GB decoded when compressed, is
    refused), a Git LFS pointer or an HTML page is refused, and the file is parsed (by column
    name, UTF-8 with BOM, integer Object IDs below 2**63, True/False flags) before it is renamed
    to OUT: a rejected download never appears under OUT. One download per folder at a time;
    a full disk is one line and exit 1, leaving no file behind.

    \b
    Example:  methbuild met csv --out met/MetObjects.csv
    """
    from methbuild.met.download import fetch_met_csv

    path, df = fetch_met_csv(url, out, progress=not quiet)
    size = path.stat().st_size
    click.echo(f"written: {path} ({size / 1e6:.1f} MB, {len(df)} objects, "
               f"{int(df['Is Public Domain'].sum())} public domain)")
