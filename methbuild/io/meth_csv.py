"""Where a MetH CSV's ``Image file`` points.

The published layout is ``<Name>/<Name>.csv`` beside ``<Name>/data/<objectID>.jpg``, and the
``Image file`` column holds the **bare file name** (``436018.jpg``), relative to ``<Name>/data/``: the
authors' dataset classes (HPAI-BSC MetH-baselines) join their images folder with that value, as the
group's MAMe CSV does. Manifests written by methbuild before 0.2 held ``data/436018.jpg`` (relative to
the CSV's folder); they are still read. Absolute paths are kept as they are.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

IMAGE_FILE_COLUMN = "Image file"
DATA_DIR = "data"


def image_file_value(object_id: int | str, ext: str) -> str:
    """The ``Image file`` value methbuild writes for an object: the bare name ``<id><ext>``."""
    return f"{object_id}{ext}"


def bare_name(value: str) -> str:
    """The bare file name of an ``Image file`` value in either form (``data/1.jpg`` → ``1.jpg``)."""
    return PurePosixPath(str(value).replace("\\", "/")).name


def resolve_image_file(csv_dir: str | os.PathLike, value: str) -> Path:
    """The path of the image an ``Image file`` value names, for a CSV in ``csv_dir``.

    - an absolute path: itself;
    - a bare name (``1.jpg``, the published form): ``csv_dir/data/1.jpg``;
    - a relative path with a folder (``data/1.jpg``, the pre-0.2 form, or ``images/x/1.jpg``):
      relative to ``csv_dir``.
    """
    value = str(value).strip()
    p = Path(value)
    if p.is_absolute():
        return p
    if len(PurePosixPath(value.replace("\\", "/")).parts) == 1:
        return Path(csv_dir) / DATA_DIR / value
    return Path(csv_dir) / p
