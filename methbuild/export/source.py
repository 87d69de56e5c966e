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

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

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
    rows: list[dict]  # CSV columns as written (text), then _split, _path
    columns: list[str]  # the CSV's columns, in order
    task: str  # classification | regression | none
    classes: list[str] = field(default_factory=list)  # sorted class names (classification)

    @property
    def splits(self) -> list[str]:
        present = {r["_split"] for r in self.rows}
        return [s for s in SPLIT_ORDER if s in present] + sorted(present - set(SPLIT_ORDER))

    def extra_columns(self) -> list[str]:
        """Keys added to each sample's fields when the CSV has no column for them (split, width, height)."""
        extra = []
        for col, name in ((self.spec.split_col, "split"), (self.spec.width_col, "width"),
                          (self.spec.height_col, "height")):
            if col is None:
                extra.append(name)
        return extra


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    """The header and the rows (text, stripped) of a CSV; a UserError when it cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise UserError(f"{str(path)!r} is empty")
            rows = []
            for line, values in enumerate(reader, start=2):
                if not values:
                    continue
                if len(values) != len(header):
                    raise UserError(f"{str(path)!r} line {line}: {len(values)} values for {len(header)} columns")
                rows.append({k: v.strip() for k, v in zip(header, values)})
    except UnicodeDecodeError:
        raise UserError(f"{str(path)!r} is not UTF-8; export it as UTF-8 CSV") from None
    except (csv.Error, OSError) as exc:
        raise UserError(f"cannot read {str(path)!r}: {exc}") from None
    return header, rows


def _require(header: list[str], path: Path, cols) -> None:
    missing = [c for c in cols if c and c not in header]
    if missing:
        raise UserError(f"{str(path)!r} has no column(s) {', '.join(map(repr, missing))}; "
                        f"its columns: {', '.join(header)}")


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
    header, rows = _read_csv(csv_path)
    spec = METH
    _require(header, csv_path, (spec.id_col, spec.label_col, spec.file_col, spec.split_col))
    csv_dir = csv_path.parent.resolve()
    for r in rows:
        r["_split"] = r[spec.split_col]
        r["_path"] = str(resolve_image_file(csv_dir, r[spec.file_col]))
    labels = [r[spec.label_col] for r in rows]
    if rows and all(v == "" for v in labels):
        task = "none"
    elif rows and all(_INT.fullmatch(v) for v in labels):
        task = "regression"
    else:
        task = "classification"
        empty = [r[spec.id_col] for r in rows if r[spec.label_col] == ""]
        if empty:
            raise UserError(f"{str(csv_path)!r}: {len(empty)} row(s) have no Label (e.g. ID {empty[0]}) "
                            "in a classification dataset")
    classes = sorted(set(labels), key=class_sort_key) if task == "classification" else []
    return Source(csv_path.stem, csv_dir, spec, rows, header, task, classes)


def _ultramnist(folder: Path) -> Source:
    spec = ULTRAMNIST
    root = folder.resolve()
    rows: list[dict] = []
    header: list[str] = []
    for split in ("train", "test"):
        path = folder / f"{split}.csv"
        if not path.is_file():
            continue
        cols, part = _read_csv(path)
        _require(cols, path, (spec.id_col, spec.label_col))
        header = header or cols
        for r in part:
            if not re.fullmatch(r"\d+", r[spec.label_col]):
                raise UserError(f"{str(path)!r}: digit_sum {r[spec.label_col]!r} of id {r[spec.id_col]!r} "
                                "is not a number")
            r["_split"] = split
            r["_path"] = str(root / split / f"{r[spec.id_col]}.jpeg")
        rows += part
    classes = sorted(set(ULTRAMNIST_CLASSES) | {r[spec.label_col] for r in rows}, key=class_sort_key)
    return Source(root.name, root, spec, rows, header, "classification", classes)


def _crawl(folder: Path) -> Source:
    spec = CRAWL
    path = folder / "objects.csv"
    header, rows = _read_csv(path)
    _require(header, path, (spec.id_col, spec.file_col, "status"))
    root = folder.resolve()
    rows = [r for r in rows if r["status"] == "downloaded"]
    for r in rows:
        r["_split"] = "train"
        r["_path"] = r[spec.file_col] if os.path.isabs(r[spec.file_col]) else str(root / r[spec.file_col])
    return Source(root.name, root, spec, rows, header, "none")
