"""The files that describe a built dataset: a ``README.md`` dataset card and ``croissant.json``."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from methbuild import __version__
from methbuild.io.atomic import atomic_write_text
from methbuild.recipe import SPLITS, Recipe

CC0 = "https://creativecommons.org/publicdomain/zero/1.0/"
MET = "https://www.metmuseum.org/about-the-met/policies-and-documents/open-access"


def _stats(values: pd.Series) -> str:
    if values.empty:
        return "–"
    q = np.quantile(values, [0, 0.25, 0.5, 0.75, 1])
    return " / ".join(f"{v:.2f}" for v in q) + f" (mean {values.mean():.2f})"


def card_text(recipe: Recipe, table: pd.DataFrame, *, scale: float, source: str) -> str:
    counts = table["Split"].value_counts()
    mp = table["Product size"] / 1e6
    ar = table["Aspect ratio"]
    lines = [
        f"# {recipe.title}",
        "",
        recipe.description or "",
        "",
        "| | |", "|---|---|",
        f"| Task | {recipe.task} |",
        "| Source | The Metropolitan Museum of Art, Open Access (original images, never re-encoded) |",
        f"| Licence | CC0 1.0 ({CC0}) |",
        f"| Built from | {source} (seed {recipe.seed}, scale {scale:g}) by methbuild {__version__} |",
        f"| Images | {len(table)} |",
        "",
        "## Splits",
        "",
        "| split | images |", "|---|---|",
    ]
    lines += [f"| {s} | {int(counts.get(s, 0))} |" for s in SPLITS if counts.get(s, 0)]
    if recipe.task == "classification":
        per = table.pivot_table(index="Label", columns="Split", values="ID", aggfunc="count", fill_value=0)
        cols = [s for s in SPLITS if s in per.columns]
        lines += ["", "## Classes", "", "| class | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        lines += [f"| {label} | " + " | ".join(str(int(per.at[label, c])) for c in cols) + " |" for label in per.index]
    lines += [
        "",
        "## Sizes",
        "",
        "min / Q1 / median / Q3 / max:",
        "",
        f"- megapixels: {_stats(mp)}",
        f"- aspect ratio (width / height): {_stats(ar)}",
        f"- portrait share: {(ar < 1).mean() * 100:.1f}%",
        "",
        "## Files",
        "",
        f"- `{recipe.title}.csv`: `ID, Label, Image file, Width, Height, Product size, Aspect ratio, Split`,"
        " then `Accession number, URL, sha256`. Product size = width × height; aspect ratio = width / height.",
        "- `data/<objectID>.jpg`: the Met's original image.",
    ]
    if getattr(recipe, "lowres_scales", None):
        lines.append("- `lowres/X<s>/<objectID>.png`: bicubic (MATLAB imresize convention) copies of the test "
                     "images at ×" + ", ×".join(map(str, recipe.lowres_scales)) + "; `lowres/lowres.csv` records the crops.")
    lines += ["", "## Rebuild", "", f"    methbuild build --manifest {recipe.title}.csv --out DATASETS", ""]
    return "\n".join(lines)


def write_card(recipe: Recipe, table: pd.DataFrame, folder: Path, *, scale: float, source: str) -> Path:
    path = folder / "README.md"
    atomic_write_text(path, card_text(recipe, table, scale=scale, source=source))
    return path


def croissant_metadata(recipe: Recipe, table: pd.DataFrame, folder: Path) -> dict | None:
    """Croissant 1.0 JSON-LD built with mlcroissant (None when it is not installed)."""
    try:
        import mlcroissant as mlc
    except ImportError:
        return None
    logging.getLogger("absl").setLevel(logging.ERROR)
    csv_name = f"{recipe.title}.csv"
    sha = hashlib.sha256((folder / csv_name).read_bytes()).hexdigest()
    exts = sorted({Path(f).suffix.lstrip(".") for f in table["Image file"]}) or ["jpg"]
    distribution = [
        mlc.FileObject(id="table", name="table", content_url=csv_name, encoding_formats=["text/csv"], sha256=sha),
        mlc.FileSet(id="images", name="images", encoding_formats=["image/jpeg"],
                    includes=[f"data/*.{e}" for e in exts]),
    ]
    types = {"ID": mlc.DataType.INTEGER, "Width": mlc.DataType.INTEGER, "Height": mlc.DataType.INTEGER,
             "Product size": mlc.DataType.INTEGER, "Aspect ratio": mlc.DataType.FLOAT,
             "Label": mlc.DataType.INTEGER if recipe.task == "regression" else mlc.DataType.TEXT}
    fields = [mlc.Field(id="records/" + c.lower().replace(" ", "_"), name=c, data_types=[types.get(c, mlc.DataType.TEXT)],
                        source=mlc.Source(file_object="table", extract=mlc.Extract(column=c)))
              for c in table.columns]
    md = mlc.Metadata(
        name=recipe.title, description=recipe.description or recipe.title, license=[CC0], url=MET,
        version=recipe.version, cite_as="Parés et al., MetH: A family of high-resolution and variable-shape image "
        "challenges (2020)", date_published=dt.datetime.now(dt.timezone.utc).replace(microsecond=0),
        distribution=distribution,
        record_sets=[mlc.RecordSet(id="records", name="records", fields=fields)],
    )
    return md.to_json()


def write_croissant(recipe: Recipe, table: pd.DataFrame, folder: Path) -> Path | None:
    meta = croissant_metadata(recipe, table, folder)
    if meta is None:
        return None
    path = folder / "croissant.json"
    atomic_write_text(path, json.dumps(meta, indent=2, default=str) + "\n")
    return path
