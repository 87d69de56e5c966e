"""The files that describe a built dataset: a ``README.md`` dataset card and ``croissant.json``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from methbuild import __version__
from methbuild.croissant import (CC0, Column, csv_file, image_file_set, image_record_set, mlcroissant, now,
                                 path_field, rai_fields, table_record_set, write)
from methbuild.io.atomic import atomic_write_text
from methbuild.recipe import SPLITS, Recipe

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
        " then `Accession number, URL, sha256`. Product size = width × height; aspect ratio = width / height."
        " `Image file` is the bare file name (`436018.jpg`), relative to `data/`.",
        "- `data/<objectID>.jpg`: the Met's original image.",
        "- `croissant.json`: Croissant metadata with Responsible-AI fields; RecordSets `records` (the table) and"
        " `images` (decoded images)" + (" and `lowres` (the LR copies)" if getattr(recipe, "lowres_scales", None) else "")
        + ", linked by file name and ID.",
    ]
    if getattr(recipe, "lowres_scales", None):
        lines.append("- `lowres/X<s>/<objectID>.png`: bicubic (MATLAB imresize convention) copies of the test "
                     "images at ×" + ", ×".join(map(str, recipe.lowres_scales)) + "; `lowres/lowres.csv` records the crops.")
    lines += [
        "",
        "## Load",
        "",
        "As the authors' loaders (HPAI-BSC/MetH-baselines) do: the images folder joined with `Image file`:",
        "",
        f"    df = pandas.read_csv('{recipe.title}/{recipe.title}.csv')",
        f"    image = PIL.Image.open(os.path.join('{recipe.title}/data', df['Image file'][0]))",
        "",
        "or with mlcroissant: `mlcroissant.Dataset(jsonld='croissant.json').records('images')`.",
        "",
        "## Rebuild",
        "",
        f"    methbuild build --manifest {recipe.title}.csv --out DATASETS",
        "",
    ]
    return "\n".join(lines)


def write_card(recipe: Recipe, table: pd.DataFrame, folder: Path, *, scale: float, source: str) -> Path:
    path = folder / "README.md"
    atomic_write_text(path, card_text(recipe, table, scale=scale, source=source))
    return path


@dataclass(frozen=True)
class Provenance:
    """Where and when a build's images came from: true statements for the card and Croissant's RAI fields."""

    source: str  # "recipe meth-medium 1.0.0" or "manifest X.csv"
    api_url: str = ""  # the Collection API base the objects were fetched from
    downloaded: tuple[dt.datetime, dt.datetime] | None = None  # first and last download of this dataset's images
    scale: float = 1.0


def _rai(recipe: Recipe, table: pd.DataFrame, prov: Provenance) -> dict:
    """The Responsible-AI statements of a MetH build (``rai:*``): what was done, nothing more."""
    sr = bool(getattr(recipe, "lowres_scales", None))
    host = f" at {prov.api_url}" if prov.api_url else ""
    collection = (
        "Object records come from The Metropolitan Museum of Art's Open Access program (MetObjects.csv and the "
        f"Collection API{host}, GET /objects/{{id}}); each image is the object's primaryImage, the full-resolution "
        "original, downloaded by methbuild's crawler and kept byte for byte (its sha256 is in the table). Only objects "
        "flagged public domain (CC0) with an original image are included; primaryImageSmall is never used.")
    timeframe = list(prov.downloaded) if prov.downloaded else None  # rai_fields refuses a missing one
    preprocessing = [
        "The images in data/ are the downloaded originals, not re-encoded, resized, cropped or rotated; Width and "
        "Height are read from the file header.",
        (f"Kept only objects whose original is at least {recipe.min_side}x{recipe.min_side} px"
         + (f" and above {recipe.min_megapixels:g} MP" if recipe.min_megapixels else "") + "."
         if recipe.name else "The objects are exactly those the manifest lists; where it gives a sha256, every "
         "downloaded original was checked against it."),
        recipe.split_protocol(),
    ]
    if prov.scale != 1:
        preprocessing.append(f"Built at --scale {prov.scale:g}: every split size is {prov.scale:g} times the paper's.")
    if sr:
        preprocessing.append(
            "The test images also have bicubic low-resolution copies in lowres/X<s>/<ID>.png (s = "
            + ", ".join(map(str, recipe.lowres_scales))
            + "): the original cropped top-left to multiples of 16, reduced with"
            " libvips' cubic kernel (the MATLAB imresize convention), saved as lossless 8-bit PNG; "
            "lowres/lowres.csv records every crop.")
    labelled = recipe.task != "super-resolution"
    biases = [
        "What is here is what The Met collected, catalogued, photographed and released as open access: the sample "
        "inherits the museum's geographic, departmental and period emphases and its photography practices.",
    ]
    if labelled:
        biases.append("Labels use the Met's cataloguing vocabulary, whose granularity differs between departments.")
    if recipe.task == "classification":
        biases.append("Classes are balanced by count in every split; within a class, object types and periods follow "
                      "what the museum holds for that class.")
    if recipe.name == "meth-period":
        biases.append("Train and validation are balanced over 50-year bins; the test set follows the collection's own "
                      "distribution of exactly dated objects.")
    if sr:
        biases.append("Only originals above 12 MP: the museum's choice of photographic resolution decides which "
                      "objects qualify.")
    limitations = [
        "Labels are catalogue metadata, not checked by annotators for this dataset; the Met revises its records."
        if labelled else "The originals are the museum's photographs of its objects, not a sample of everyday "
        "photographs; results on them need not transfer to camera images.",
        "Images vary widely in size and aspect ratio (from 500 px a side to tens of megapixels), as intended; models "
        "must resize, crop or bucket them.",
        f"This build holds {len(table)} images; the Met's records and images can change after the download "
        "(rebuilding from the CSV verifies every image's sha256).",
    ]
    if prov.scale != 1:
        limitations.append(f"Scaled build (--scale {prov.scale:g}): not the paper's split sizes.")
    return rai_fields(
        data_collection=collection,
        data_collection_type=["Web API", "Secondary Data Analysis"],
        data_collection_timeframe=timeframe,
        data_preprocessing_protocol=preprocessing,
        data_annotation_protocol=[recipe.label_protocol()],
        data_biases=biases,
        data_limitations=limitations,
        data_use_cases=[f"{recipe.task}: {recipe.description or recipe.title}",
                        "Benchmarking models and input pipelines on high-resolution, variable-shape images "
                        "(Parés et al., MetH, 2020).",
                        "Not suited to authoritative attribution, dating or valuation of real objects."],
        personal_sensitive_information=[
            "None collected: the table holds object IDs, catalogue labels, image sizes, accession numbers, image URLs "
            "and checksums. Some artworks depict people; no data about living individuals or about the person who "
            "ran the build is stored."],
    )


def _columns(recipe: Recipe, table: pd.DataFrame) -> list[Column]:
    label = Column("Label", "integer" if recipe.task == "regression" else "text",
                   "The creation year." if recipe.task == "regression" else "The class name.")
    cols = [
        Column("ID", "integer", "The Met's object ID."),
        label,
        Column("Image file", "text", "The image's bare file name, relative to data/ (equals images/file_name)."),
        Column("Width", "integer", "Width of the original in pixels."),
        Column("Height", "integer", "Height of the original in pixels."),
        Column("Product size", "integer", "Width x height."),
        Column("Aspect ratio", "float", "Width / height."),
        Column("Split", "text", "train, validation or test."),
        Column("URL", "text", "Where the original was downloaded from."),
        Column("sha256", "text", "SHA-256 of the image file."),
    ]
    if not table["Label"].astype(str).str.strip().ne("").any():  # MetH-SR: no label
        cols.remove(label)
    # "Accession number" is left out on purpose: readers that infer types (pandas, and so mlcroissant) turn
    # "1914.450" into the float 1914.45. It stays in the CSV; read it there as text.
    return [c for c in cols if c.name in table.columns]


def croissant_metadata(recipe: Recipe, table: pd.DataFrame, folder: Path, prov: Provenance):
    """The ``mlcroissant.Metadata`` of a built MetH dataset (None when mlcroissant is not installed)."""
    mlc = mlcroissant()
    if mlc is None:
        return None
    csv_name = f"{recipe.title}.csv"
    exts = sorted({Path(str(f)).suffix.lstrip(".").lower() for f in table["Image file"]}) or ["jpg"]
    distribution = [
        csv_file(mlc, "table", folder, csv_name, f"{csv_name}: one row per image, the published MetH columns."),
        image_file_set(mlc, "image-files", [f"data/*.{e}" for e in exts], "The original images, data/<ID>.<ext>."),
    ]
    record_sets = [
        table_record_set(mlc, "records", _columns(recipe, table), {"file_object": "table"},
                         f"One record per row of {csv_name}. Link to the images by 'Image file' = images/file_name."),
        image_record_set(mlc, "images", "image-files", "One record per original image in data/.", extra=[
            path_field(mlc, "images", "id", "image-files", r"^(\d+)\.", "integer",
                       "The object ID (the file's stem): the link to records/id.", prop="filename")]),
    ]
    scales = getattr(recipe, "lowres_scales", None)
    if scales:
        distribution.append(image_file_set(mlc, "lowres-files", ["lowres/X*/*.png"],
                                           "Bicubic low-resolution copies of the test images, lowres/X<s>/<ID>.png."))
        record_sets.append(image_record_set(mlc, "lowres", "lowres-files", (
            "One record per low-resolution copy of a test image: the image, its scale and the ID of its "
            "high-resolution original (records/id, images/id)."),
            file_name_description="<ID>.png: the same ID as the original's data/<ID>.jpg.", extra=[
            path_field(mlc, "lowres", "scale", "lowres-files", r"^lowres/X(\d+)/", "integer",
                       "The down-scaling factor s: the copy is the cropped original divided by s."),
            path_field(mlc, "lowres", "id", "lowres-files", r"^(\d+)\.png$", "integer",
                       "The object ID of the high-resolution original.", prop="filename"),
        ]))
    return mlc.Metadata(
        name=recipe.title, description=recipe.description or recipe.title, license=[CC0], url=MET,
        version=recipe.version, cite_as="Parés et al., MetH: A family of high-resolution and variable-shape image "
        "challenges (2020)", date_published=now(), distribution=distribution, record_sets=record_sets,
        **_rai(recipe, table, prov))


def write_croissant(recipe: Recipe, table: pd.DataFrame, folder: Path, prov: Provenance) -> Path | None:
    meta = croissant_metadata(recipe, table, folder, prov)
    if meta is None:
        return None
    return write(meta, folder / "croissant.json")
