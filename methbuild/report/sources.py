"""What a report can be made of: the four kinds of folder methbuild writes, read into one shape.

:func:`open_source` recognises SRC and returns a :class:`Source`: one row per image in ``table``
(``id, label, group, split, width, height, file, sha256, url``), the facts of its header in
``info``, and what is special to its kind in ``extras``. Nothing here decodes an image: sizes come
from the manifest (a MetH CSV, a crawl's ``objects.csv``), from headers (UltraMNIST), or from the
batch shape (downsampled ImageNet).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from methbuild.errors import UserError

KINDS = ("meth", "ultramnist", "imagenet", "crawl")
SPLIT_ORDER = ("train", "validation", "val", "test", "all")
TABLE_COLUMNS = ["id", "label", "group", "split", "width", "height", "file", "sha256", "url"]
# "Built from | recipe meth-medium 1.0.0 (seed 0, scale 0.005) by methbuild 0.1.0" (methbuild/dataset_card.py)
CARD_BUILT_FROM = re.compile(r"\|\s*Built from\s*\|\s*(?P<source>.+?)\s*"
                             r"\(seed (?P<seed>-?\d+), scale (?P<scale>[^)]+)\)"
                             r"\s*by methbuild (?P<version>\S+)\s*\|")


@dataclass
class Source:
    kind: str
    folder: Path
    name: str
    manifest: Path  # the file that identifies the dataset (its sha256 is printed under "Reproduce")
    table: pd.DataFrame
    task: str
    info: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)

    @property
    def splits(self) -> list[str]:
        present = list(dict.fromkeys(self.table["split"]))
        return sorted(present, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else len(SPLIT_ORDER), s))


def detect(path: Path) -> str | None:
    """The kind of folder ``path`` is, or None."""
    if not path.is_dir():
        return None
    if (path / f"{path.name}.csv").is_file():
        return "meth"
    if (path / "train.csv").is_file() and ((path / "summary.json").is_file() or (path / "train_digits.csv").is_file()):
        return "ultramnist"
    if (path / "downsample.json").is_file() or any((path / n).is_file() for n in ("train_data_batch_1",
                                                                                "train_data_batch_1.npz")):
        return "imagenet"
    if (path / "objects.csv").is_file() or (path / "crawl.sqlite").is_file():
        return "crawl"
    return None


def open_source(src: str | Path) -> Source:
    """Read SRC; a UserError in one line when it is not a dataset methbuild made."""
    path = Path(src)
    if path.is_file() and path.suffix.lower() == ".csv" and path.stem == path.parent.name:
        path = path.parent  # the MetH CSV itself: report on its folder
    if not path.exists():
        raise UserError(f"SRC {str(src)!r} does not exist")
    kind = detect(path)
    if kind is None:
        raise UserError(f"SRC {str(src)!r} is not a dataset: expected a built MetH folder (<Name>/<Name>.csv), an "
                        "UltraMNIST folder (train.csv, summary.json), a downsampled ImageNet folder (downsample.json, "
                        "train_data_batch_*) or a crawl folder (objects.csv, crawl.sqlite)")
    return {"meth": _meth, "ultramnist": _ultramnist, "imagenet": _imagenet, "crawl": _crawl}[kind](path)


def _croissant_info(folder: Path) -> dict:
    path = folder / "croissant.json"
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"croissant_unreadable": True}
    lic = doc.get("license")
    tf = doc.get("rai:dataCollectionTimeframe") or doc.get("rai:dataCollectionTimeFrame")
    return {"name": doc.get("name"), "version": doc.get("version"), "date_published": doc.get("datePublished"),
            "license": ", ".join(lic) if isinstance(lic, list) else lic, "timeframe": tf,
            "collection": doc.get("rai:dataCollection")}


def _frame(**cols) -> pd.DataFrame:
    df = pd.DataFrame(cols)
    for c in TABLE_COLUMNS:
        if c not in df.columns:
            df[c] = ""
    return df[TABLE_COLUMNS]


def _meth(folder: Path) -> Source:
    from methbuild.io.meth_csv import resolve_image_file

    csv = folder / f"{folder.name}.csv"
    try:
        df = pd.read_csv(csv, dtype={"Label": str, "Image file": str, "Split": str, "sha256": str, "URL": str},
                         keep_default_na=False, encoding="utf-8-sig")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"cannot read {str(csv)!r}: {exc}") from None
    missing = [c for c in ("ID", "Label", "Image file", "Width", "Height", "Split") if c not in df.columns]
    if missing:
        raise UserError(f"{str(csv)!r} is not a MetH CSV: no column(s) {', '.join(missing)}")
    labels = df["Label"].astype(str).str.strip()
    years = pd.to_numeric(labels, errors="coerce")
    if labels.eq("").all():
        task, group = "super-resolution", pd.Series(["(no label)"] * len(df))
    elif len(df) and years.notna().all():
        from methbuild.recipe import bin_label, year_bins

        bins = year_bins(1500, 1900, 50)
        task = "regression"
        group = years.map(lambda y: bin_label(int(y), bins) or ("before 1500" if y < 1500 else "after 1900"))
    else:
        task, group = "classification", labels
    data_dir = str(folder / "data") + os.sep
    # the published bare name (no separator) is joined as a string: Path objects cost ~1 s per 30,000 rows
    files = [data_dir + v if v and "/" not in v and "\\" not in v and v.strip() == v and v not in (".", "..")
             else str(resolve_image_file(folder, v)) for v in df["Image file"].astype(str)]
    table = _frame(id=df["ID"].astype(str), label=labels, group=group.astype(str), split=df["Split"].astype(str),
                   width=pd.to_numeric(df["Width"], errors="coerce"),
                   height=pd.to_numeric(df["Height"], errors="coerce"),
                   file=files, sha256=df["sha256"] if "sha256" in df.columns else "",
                   url=df["URL"] if "URL" in df.columns else "")
    info = _croissant_info(folder)
    info.update(_card_info(folder))
    extras = {}
    if (folder / "lowres" / "lowres.csv").is_file():
        extras["lowres"] = pd.read_csv(folder / "lowres" / "lowres.csv", dtype={"stem": str}, keep_default_na=False)
    return Source("meth", folder, info.get("name") or folder.name, csv, table, task, info, extras)


def _card_info(folder: Path) -> dict:
    readme = folder / "README.md"
    if not readme.is_file():
        return {}
    m = CARD_BUILT_FROM.search(readme.read_text(encoding="utf-8", errors="replace"))
    if not m:
        return {}
    source = m["source"]
    out = {"built_from": source, "seed": int(m["seed"]), "scale": m["scale"].strip(), "built_by": m["version"]}
    parts = source.split()
    if len(parts) >= 2 and parts[0] == "recipe":
        out["recipe"] = parts[1]
        if len(parts) >= 3:
            out["recipe_version"] = parts[2]
    elif len(parts) >= 2 and parts[0] == "manifest":
        out["from_manifest"] = parts[1]
    return out


def _ultramnist(folder: Path) -> Source:
    frames, digits = [], []
    for split in ("train", "test"):
        csv = folder / f"{split}.csv"
        if not csv.is_file():
            continue
        try:
            t = pd.read_csv(csv, dtype={"id": str})
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise UserError(f"cannot read {str(csv)!r}: {exc}") from None
        if not {"id", "digit_sum"} <= set(t.columns):
            raise UserError(f"{str(csv)!r} is not an UltraMNIST table: it needs the columns id, digit_sum")
        t["split"] = split
        frames.append(t)
        dcsv = folder / f"{split}_digits.csv"
        if dcsv.is_file():
            d = pd.read_csv(dcsv, dtype={"id": str})
            d["split"] = split
            digits.append(d)
    t = pd.concat(frames, ignore_index=True)
    summary = {}
    if (folder / "summary.json").is_file():
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    args = summary.get("arguments", {})
    ext = {"png": ".png"}.get(str(args.get("format", "jpeg")), ".jpeg")
    files = [folder / s / f"{i}{ext}" for s, i in zip(t["split"], t["id"])]
    # Sizes from the headers (fast reader, nothing decoded); the generator's --size when a file is missing.
    from methbuild.stats.headers import read_header

    w, h = [], []
    for f in files:
        try:
            r = read_header(str(f))
        except (OSError, ValueError):  # missing or unreadable: listed under problems, left out of the geometry
            r = None
        size = _header_size(r)
        w.append(size[0] if size else np.nan)
        h.append(size[1] if size else np.nan)
    sums = t["digit_sum"].astype(str)
    table = _frame(id=t["id"], label=sums, group=sums, split=t["split"], width=w, height=h,
                   file=[str(f) for f in files])
    info = _croissant_info(folder)
    info.update({"generator": summary.get("generator"), "arguments": args, "seed": args.get("seed")})
    extras = {"digits": pd.concat(digits, ignore_index=True) if digits else None, "summary": summary}
    return Source("ultramnist", folder, info.get("name") or folder.name, folder / "train.csv", table,
                  "digit sum (regression / classification)", info, extras)


def _header_size(result) -> tuple[int, int] | None:
    """(width, height) out of whatever :func:`methbuild.stats.headers.read_header` returned."""
    if result is None:
        return None
    if isinstance(result, dict):
        w, h = result.get("width"), result.get("height")
    elif isinstance(result, tuple):
        w, h = (result[0], result[1]) if len(result) >= 2 else (None, None)
    else:
        w, h = getattr(result, "width", None), getattr(result, "height", None)
    return (int(w), int(h)) if isinstance(w, (int, np.integer)) and isinstance(h, (int, np.integer)) else None


def _imagenet(folder: Path) -> Source:
    from methbuild.io.imagenet_batches import TRAIN_STEMS, VAL_STEM, read_batch

    summary = {}
    if (folder / "downsample.json").is_file():
        summary = json.loads((folder / "downsample.json").read_text(encoding="utf-8"))
    batches = []
    for stem in (*TRAIN_STEMS, VAL_STEM):
        for name in (stem, stem + ".npz"):
            if (folder / name).is_file():
                batches.append((("train" if stem != VAL_STEM else "validation"), folder / name))
                break
    if not batches:
        raise UserError(f"{str(folder)!r} has no batch file (train_data_batch_1 ... val_data)")
    labels, splits, where, size = [], [], [], None
    for split, path in batches:
        try:
            d = read_batch(path)
        except (OSError, ValueError, EOFError, KeyError) as exc:
            raise UserError(f"cannot read batch {str(path)!r}: {exc}") from None
        n = len(d["labels"])
        row_len = d["data"].shape[1]
        side = int(round((row_len // 3) ** 0.5))
        if size is None:
            size = side
        labels.extend(int(x) for x in d["labels"])
        splits.extend([split] * n)
        where.extend((str(path), k) for k in range(n))
        del d
    n = len(labels)
    ids = [f"{Path(p).name}:{k}" for p, k in where]
    lab = [str(x) for x in labels]
    table = _frame(id=ids, label=lab, group=lab, split=splits, width=[size] * n, height=[size] * n, file="")
    info = {"name": folder.name, "generator": summary.get("tool"), "config": summary.get("config", {}),
            "seed": summary.get("config", {}).get("seed"), "format": summary.get("format")}
    extras = {"batches": where, "side": size, "summary": summary}
    manifest = folder / "downsample.json" if (folder / "downsample.json").is_file() else batches[0][1]
    return Source("imagenet", folder, folder.name, manifest, table, "classification (1-based labels)", info, extras)


def _crawl(folder: Path) -> Source:
    objects = folder / "objects.csv"
    db = folder / "crawl.sqlite"
    records: dict = {}
    if objects.is_file():
        df = pd.read_csv(objects, dtype={"status": str, "image_file": str, "sha256": str, "url": str, "error": str},
                         keep_default_na=False)
    else:
        from methbuild.met.crawl import load_objects

        df = load_objects(folder).astype(object).fillna("")
    if "status" not in df.columns or "object_id" not in df.columns:
        raise UserError(f"{str(objects)!r} is not a crawl manifest: it needs object_id and status columns")
    if db.is_file():
        from methbuild.met.state import CrawlState

        with CrawlState(db) as state:
            records = state.records()
    ok = df[df["status"] == "downloaded"].reset_index(drop=True)
    dept = [str((records.get(int(i)) or {}).get("department") or "(unknown)") for i in ok["object_id"]]
    files = [str(folder / f) if f else "" for f in ok["image_file"].astype(str)]
    table = _frame(id=ok["object_id"].astype(str), label=dept, group=dept, split=["downloaded"] * len(ok),
                   width=pd.to_numeric(ok["width"], errors="coerce"),
                   height=pd.to_numeric(ok["height"], errors="coerce"),
                   file=files, sha256=ok["sha256"], url=ok["url"])
    info = {"name": folder.name}
    extras = {"objects": df, "crawl_dir": folder if db.is_file() else None}
    return Source("crawl", folder, folder.name, objects if objects.is_file() else db, table,
                  "crawl (downloaded originals, by department)", info, extras)
