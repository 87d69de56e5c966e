"""`methbuild demo`: the main jobs on embedded data, offline, in a few minutes."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"), show_default=True,
              help="Folder for everything the demo makes.")
@click.option("--quick", is_flag=True, help="A smaller UltraMNIST sample and no MetH-SR (under a minute).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(out: Path, quick: bool, quiet: bool) -> None:
    """Run methbuild's main jobs offline: an UltraMNIST sample, a crawl of real Met rows from a
    local mirror, the four MetH datasets (scaled down) from a synthetic mirror, and their
    size/aspect statistics. Both mirrors listen on 127.0.0.1; nothing reaches the internet.
    """
    from methbuild.demo import run_demo

    result = run_demo(out, progress=not quiet, quick=quick, log=click.echo)
    click.echo("\nDemo outputs:")
    for line in result.lines:
        click.echo("  " + line)
    click.echo(str(result.index))  # the last line: the page linking every report
