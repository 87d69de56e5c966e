"""What ``methbuild export`` reads: a built MetH dataset, an UltraMNIST folder, or a crawl folder.

Each kind is a small declarative :class:`SourceKind` (which CSV, which columns hold the id, label,
split, file and size, which columns are numbers, the task); :func:`open_source` recognises the kind
and reads its table into plain rows. No image is opened here: :mod:`methbuild.export.plan` stats
and sniffs the files.

- **MetH** (``<Name>/`` or ``<Name>/<Name>.csv``): ``ID, Label, Image file, Width, Height, Product
  size, Aspect ratio, Split`` and any extra columns; ``Image file`` in the published bare form
  (``436018.jpg``, under ``<Name>/data/``) or the pre-0.2 ``data/436018.jpg`` form. The task follows
  the labels, as ``build --manifest`` decides it: all empty (MetH-SR) → no label; all integers
  (MetH-Period's years) → regression; otherwise classification.
- **UltraMNIST** (a folder with ``train.csv``/``test.csv``, columns ``id,digit_sum``, images
  ``<split>/<id>.jpeg``): classification over the 28 digit sums 0–27.
- **crawl** (a folder with ``objects.csv``): the ``downloaded`` rows, one split ``train``, no label.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from methbuild.errors import UserError
from methbuild.io.meth_csv import resolve_image_file

SPLIT_ORDER = ("train", "validation", "test")
_INT = re.compile(r"-?\d+")
ULTRAMNIST_CLASSES = tuple(str(i) for i in range(28))  # digit sums 0..27 (SPEC §4)


@dataclass(frozen=True)
class SourceKind:
    """How one kind of source names its columns (``None``: the source has no such column)."""

    kind: str
    id_col: str
    file_col: str | None
    label_col: str | None
    split_col: str | None
    width_col: str | None
    height_col: str | None
    int_cols: tuple[str, ...] = ()
    float_cols: tuple[str, ...] = ()


METH = SourceKind("meth", "ID", "Image file", "Label", "Split", "Width", "Height",
                  int_cols=("ID", "Width", "Height", "Product size"), float_cols=("Aspect ratio",))
ULTRAMNIST = SourceKind("ultramnist", "id", None, "digit_sum", None, None, None, int_cols=("digit_sum",))
CRAWL = SourceKind("crawl", "object_id", "image_file", None, None, "width", "height",
                   int_cols=("object_id", "width", "height", "bytes"))


@dataclass
class Source:
    """A source's rows (every CSV column as text, plus ``_split`` and ``_path``) and what they mean."""

    name: str
    root: Path
    spec: SourceKind
    table: pd.DataFrame  # CSV columns as written (text), then _split, _path
    columns: list[str]  # the CSV's columns, in order
    task: str  # classification | regression | none
    classes: list[str] = field(default_factory=list)  # sorted class names (classification)

    @property
    def splits(self) -> list[str]:
        present = set(self.table["_split"])
        return [s for s in SPLIT_ORDER if s in present] + sorted(present - set(SPLIT_ORDER))

    def extra_columns(self) -> list[str]:
        """Keys added to each sample's fields when the CSV has no column for them (split, width, height)."""
        extra = []
        for col, name in ((self.spec.split_col, "split"), (self.spec.width_col, "width"),
                          (self.spec.height_col, "height")):
            if col is None:
                extra.append(name)
        return extra


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{str(path)!r} is not UTF-8; export it as UTF-8 CSV") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise UserError(f"cannot read {str(path)!r}: {' '.join(str(exc).split())}") from None


def _require(df: pd.DataFrame, path: Path, cols) -> None:
    missing = [c for c in cols if c and c not in df.columns]
    if missing:
        raise UserError(f"{str(path)!r} has no column(s) {', '.join(map(repr, missing))}; "
                        f"its columns: {', '.join(df.columns)}")


def class_sort_key(name: str):
    """Class names sort as numbers when they are integers (digit sums), else as text."""
    return (0, int(name), "") if _INT.fullmatch(name) else (1, 0, name)


def open_source(src: str | os.PathLike) -> Source:
    """Recognise ``src`` and read its table; a :class:`UserError` for anything else."""
    src = Path(src)
    if not src.exists():
        raise UserError(f"SRC {str(src)!r} does not exist")
    if src.is_file():
        if src.suffix.lower() != ".csv":
            raise UserError(f"SRC {str(src)!r} is a file but not a CSV: give a MetH dataset (its folder or "
                            "<Name>.csv), an UltraMNIST folder or a crawl folder")
        if src.name == "objects.csv":
            return _crawl(src.parent)
        return _meth(src)
    if (src / "objects.csv").is_file():
        return _crawl(src)
    own = src / f"{src.resolve().name}.csv"
    if own.is_file():
        return _meth(own)
    if (src / "train.csv").is_file() or (src / "test.csv").is_file():
        return _ultramnist(src)
    raise UserError(f"SRC {str(src)!r} is not a MetH dataset (<Name>/<Name>.csv), an UltraMNIST folder "
                    "(train.csv/test.csv) nor a crawl folder (objects.csv)")


def _meth(csv_path: Path) -> Source:
    df = _read_csv(csv_path)
    spec = METH
    _require(df, csv_path, (spec.id_col, spec.label_col, spec.file_col, spec.split_col))
    csv_dir = csv_path.parent.resolve()
    df["_split"] = df[spec.split_col].str.strip()
    df["_path"] = [str(resolve_image_file(csv_dir, v)) for v in df[spec.file_col]]
    labels = df[spec.label_col].str.strip()
    if len(df) and labels.eq("").all():
        task = "none"
    elif len(df) and labels.str.fullmatch(r"-?\d+").all():
        task = "regression"
    else:
        task = "classification"
        if labels.eq("").any():
            first = df.loc[labels.eq(""), spec.id_col].iloc[0]
            raise UserError(f"{str(csv_path)!r}: {int(labels.eq('').sum())} row(s) have no Label (e.g. ID {first}) "
                            "in a classification dataset")
    classes = sorted(set(labels), key=class_sort_key) if task == "classification" else []
    return Source(csv_path.stem, csv_dir, spec, df, list(df.columns[:-2]), task, classes)


def _ultramnist(folder: Path) -> Source:
    spec = ULTRAMNIST
    parts = []
    for split in ("train", "test"):
        path = folder / f"{split}.csv"
        if not path.is_file():
            continue
        df = _read_csv(path)
        _require(df, path, (spec.id_col, spec.label_col))
        df["_split"] = split
        df["_path"] = [str((folder / split / f"{i}.jpeg").resolve()) for i in df[spec.id_col]]
        parts.append(df)
    df = pd.concat(parts, ignore_index=True)
    bad = ~df[spec.label_col].str.fullmatch(r"\d+")
    if bad.any():
        raise UserError(f"{str(folder)!r}: digit_sum {df.loc[bad, spec.label_col].iloc[0]!r} is not a number")
    classes = sorted(set(ULTRAMNIST_CLASSES) | set(df[spec.label_col]), key=class_sort_key)
    return Source(folder.resolve().name, folder.resolve(), spec, df, list(df.columns[:-2]), "classification", classes)


def _crawl(folder: Path) -> Source:
    spec = CRAWL
    path = folder / "objects.csv"
    df = _read_csv(path)
    _require(df, path, (spec.id_col, spec.file_col, "status"))
    df = df[df["status"] == "downloaded"].reset_index(drop=True)
    root = folder.resolve()
    df["_split"] = "train"
    df["_path"] = [str(root / v) if not os.path.isabs(v) else v for v in df[spec.file_col]]
    return Source(root.name, root, spec, df, list(df.columns[:-2]), "none")
