"""Reading and validating the Met's ``MetObjects.csv``.

The file is read by column name (the 2017 file had 43 columns, today's has 54), as UTF-8 with
its BOM, every field as a string (``Object Number`` and ``Gallery Number`` keep leading zeros),
with the ``True``/``False`` columns parsed as booleans. Spreadsheet re-saves (``;`` delimiter,
cp1252) and Git LFS pointer files are refused with a message saying what to do, never mis-parsed.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd

from methbuild.errors import UserError

# Today's header, in the official order (54 columns).
MET_COLUMNS: tuple[str, ...] = (
    "Object Number", "Is Highlight", "Is Timeline Work", "Is Public Domain", "Object ID", "Gallery Number",
    "Department", "AccessionYear", "Object Name", "Title", "Culture", "Period", "Dynasty", "Reign", "Portfolio",
    "Constituent ID", "Artist Role", "Artist Prefix", "Artist Display Name", "Artist Display Bio",
    "Artist Suffix", "Artist Alpha Sort", "Artist Nationality", "Artist Begin Date", "Artist End Date",
    "Artist Gender", "Artist ULAN URL", "Artist Wikidata URL", "Object Date", "Object Begin Date",
    "Object End Date", "Medium", "Dimensions", "Credit Line", "Geography Type", "City", "State", "County",
    "Country", "Region", "Subregion", "Locale", "Locus", "Excavation", "River", "Classification",
    "Rights and Reproduction", "Link Resource", "Object Wikidata URL", "Metadata Date", "Repository", "Tags",
    "Tags AAT URL", "Tags Wikidata URL",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("Object ID", "Is Public Domain")
BOOLEAN_COLUMNS: tuple[str, ...] = ("Is Highlight", "Is Timeline Work", "Is Public Domain")
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"
INT64_MAX = 2**63 - 1


def is_lfs_pointer(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) is a Git LFS pointer, not the data."""
    return head.lstrip(b"\xef\xbb\xbf").startswith(LFS_POINTER_PREFIX)


def _check_header(path: Path, shown: str) -> None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(64 * 1024)
    except FileNotFoundError:
        raise UserError(f"metadata CSV {shown!r} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"metadata CSV {shown!r} is a folder, not a file") from None
    except OSError as exc:
        raise UserError(f"cannot read metadata CSV {shown!r}: {exc.strerror or exc}") from None
    if is_lfs_pointer(head):
        raise UserError(f"{shown!r} is a Git LFS pointer file, not MetObjects.csv; "
                        "download the data with `methbuild met csv`")
    if not head.strip():
        raise UserError(f"metadata CSV {shown!r} is empty")
    first = head.split(b"\n", 1)[0]
    try:
        header = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{shown!r} is not UTF-8 (a cp1252 spreadsheet re-save?); use the original "
                        "MetObjects.csv or re-save it as CSV UTF-8 with ',' as delimiter") from None
    if header.count(";") > header.count(",") and "Object ID" in header:
        raise UserError(f"{shown!r} is ';'-delimited (a spreadsheet re-save); use the original "
                        "MetObjects.csv or re-save it with ',' as delimiter")


def read_met_csv(path: str | os.PathLike, *, usecols: tuple[str, ...] | None = None,
                 name: str | None = None) -> pd.DataFrame:
    """Read a MetObjects CSV into a DataFrame (strings, booleans parsed, ``Object ID`` as int64).

    Raises :class:`UserError` for a missing file, an LFS pointer, a ``;``/cp1252 re-save,
    missing required columns, a ``Is ...`` value other than ``True``/``False`` or an ``Object ID``
    that is not an integer in 0 … 2**63-1 (``1e20`` is refused, never wrapped around). Messages
    name the file as ``name`` (default: its path).
    """
    path = Path(path)
    shown = name or str(path)
    _check_header(path, shown)
    cols = None
    if usecols is not None:
        wanted = set(usecols) | set(REQUIRED_COLUMNS)
        cols = lambda c: c in wanted  # noqa: E731 - pandas takes a callable
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig",
                         usecols=cols, engine="c", quoting=csv.QUOTE_MINIMAL)
    except UnicodeDecodeError as exc:
        raise UserError(f"{shown!r} is not UTF-8 at byte {exc.start} (a cp1252 spreadsheet re-save?); "
                        "use the original MetObjects.csv or re-save it as CSV UTF-8") from None
    except pd.errors.ParserError as exc:
        raise UserError(f"{shown!r} is not a well-formed CSV: {exc}") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"metadata CSV {shown!r} is empty") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{shown!r} lacks the column(s) {', '.join(map(repr, missing))} of MetObjects.csv "
                        f"(found {len(df.columns)} columns: {', '.join(list(df.columns)[:6])}...)")
    for col in BOOLEAN_COLUMNS:
        if col in df.columns:
            raw = df[col].str.strip()
            bad = ~raw.isin(["True", "False"])
            if bad.any():
                i = int(bad.to_numpy().nonzero()[0][0])
                raise UserError(f"{shown!r}: column {col!r} must be True or False, "
                                f"found {raw.iloc[i]!r} in data row {i + 1}")
            df[col] = (raw == "True").astype(bool)
    # ASCII digits (an integral ".0" tolerated), at most 2**63-1: parsed exactly, never through a float
    digits = df["Object ID"].str.strip().str.replace(r"\.0*$", "", regex=True).str.lstrip("0").replace("", "0")
    ok = digits.str.fullmatch(r"[0-9]{1,19}") & ((digits.str.len() < 19) | (digits <= str(INT64_MAX)))
    if not ok.all():
        i = int((~ok).to_numpy().nonzero()[0][0])
        raise UserError(f"{shown!r}: 'Object ID' must be an integer from 0 to 2**63-1, found "
                        f"{df['Object ID'].iloc[i][:40]!r} in data row {i + 1}")
    df["Object ID"] = digits.astype("int64")
    return df
