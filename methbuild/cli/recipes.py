"""`methbuild recipes`: list, show and propose MetH recipes."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("recipes")
def command() -> None:
    """List the MetH recipes, show one, or propose a class list from the metadata."""


@command.command("list")
def list_() -> None:
    """One line per recipe: name, version, task, classes, split sizes."""
    import recipes

    for name, cls in recipes.all_recipes().items():
        r = cls()
        sizes = r.split_sizes
        per = f"{sizes.train}/{sizes.validation}/{sizes.test}" if sizes else "-"
        click.echo(f"{name:15} v{r.version:7} {r.task:17} {len(r.classes):3} group(s), per group train/val/test {per}")


@command.command("show")
@click.argument("name")
def show(name: str) -> None:
    """Everything a recipe pins: classes, normalisation map, size rules, split sizes, seed (JSON)."""
    import recipes

    click.echo(json.dumps(recipes.get(name).describe(), indent=2))


@command.command("propose")
@click.argument("name")
@click.option("--metadata", type=click.Path(dir_okay=False, path_type=Path), default=Path("met/MetObjects.csv"),
              show_default=True, help="The MetObjects CSV to count eligible objects in.")
@click.option("--top", type=click.IntRange(min=1, max=100_000), default=30, show_default=True,
              help="How many values to list (at most 100,000).")
def propose(name: str, metadata: Path, top: int) -> None:
    """Suggest a class list: raw values by count of eligible (public-domain) objects, with what
    each maps to under the recipe's current list, for a person to pin."""
    import recipes
    from methbuild.errors import UserError
    from methbuild.met.metadata import read_met_csv

    recipe = recipes.get(name)
    if not metadata.is_file():
        raise UserError(f"--metadata {str(metadata)!r} does not exist (download it with `methbuild met csv`)")
    table = recipe.propose(read_met_csv(metadata), top=top)
    width = max([len(str(v)) for v in table["value"]] + [5])
    click.echo(f"{'value':{width}}  {'objects':>8}  maps to")
    for v, n, m in zip(table["value"], table["objects"], table["maps to"]):
        click.echo(f"{v:{width}}  {n:8d}  {m or '-'}")
