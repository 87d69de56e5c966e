"""Tables on disk: CSV (always) and Parquet (when asked), written atomically.

File names that are not valid UTF-8 (real in copied or unzipped collections) reach Python as strings
with surrogate escapes (``os.fsdecode(b"\\xff.png") == "\\udcff.png"``). Neither Arrow (pandas' string
type, Parquet) nor a UTF-8 CSV can hold those, so every text cell goes through :func:`table_text`
first: the undecodable bytes are written as ``\\xNN`` escapes (``\\xff.png``), and the file stays
valid UTF-8 for every reader. The escape is the name a user sees in ``ls -b``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from methbuild.io.atomic import atomic_path

if TYPE_CHECKING:  # pandas is imported by the caller that builds the table: workers only need table_text
    import pandas as pd


def table_text(value: str) -> str:
    """``value`` as valid UTF-8 text: bytes a file name could not decode become ``\\xNN`` escapes."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:  # a name decoded by os.fsdecode: give back its bytes, escaping those that are not UTF-8
        return os.fsencode(value).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate of another origin
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def table_texts(values) -> list:
    """:func:`table_text` over a sequence (non-strings kept)."""
    return [table_text(v) if isinstance(v, str) else v for v in values]


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` to ``path`` as CSV or Parquet (by suffix), atomically, without the index."""
    path = Path(path)
    with atomic_path(path) as tmp:
        # through a Python file object: Arrow cannot open a path that is not UTF-8, Python can
        if path.suffix == ".parquet":
            with open(tmp, "wb") as fh:
                df.to_parquet(fh, index=False)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                df.to_csv(fh, index=False, lineterminator="\n")
    return path
