"""Tables on disk: CSV (always) and Parquet (when asked), written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from methbuild.io.atomic import atomic_path


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` to ``path`` as CSV or Parquet (by suffix), atomically, without the index."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False, lineterminator="\n")
    return path
