"""Dataset overlaps (paper 000, Table 1): for each ordered pair, the % of the first's images also in the second.

An image is identified by a key:

- ``id`` (default): the ID column of a manifest (``ID`` in a MetH CSV, ``object_id`` in a crawl
  manifest); for a folder, the file name without extension — MetH files are ``<objectID>.jpg``, so a
  folder and a manifest of the same dataset compare equal.
- ``name``: the file name without extension for both (a manifest's image file column).
- ``sha256``: the content. A manifest's ``sha256`` column when it has one, else its files (image file
  column, relative to the manifest's folder) are hashed; a folder's files are hashed.

Overlaps always use every image of an input, not the ``--sample``: keys by ID or name cost nothing
to list, and a sampled overlap would underestimate the share.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from methbuild.errors import UserError
from methbuild.io.meth_csv import IMAGE_FILE_COLUMN, resolve_image_file
from methbuild.io.tables import table_texts
from methbuild.stats.headers import HASH_VERSION, chunk_cache_name, hash_chunk
from methbuild.stats.inputs import CHUNK, Listing, Manifest, run_chunks

OVERLAP_BY = ("id", "name", "sha256")


def _stem(name: str) -> str:
    base = name.replace("\\", "/").rpartition("/")[2]
    stem, dot, _ = base.rpartition(".")
    return stem if dot else base


def _text(path: bytes) -> str:
    """A relative path as table text: bytes that are not UTF-8 as ``\\xNN`` escapes."""
    return path.decode("utf-8", "backslashreplace")


def _hash_files(root: str, rels: list[bytes], *, workers, progress, cache_dir: Path | None, desc: str):
    items = []
    for start in range(0, len(rels), CHUNK):
        blob = b"\0".join(rels[start:start + CHUNK])
        cache = str(cache_dir / chunk_cache_name(root, blob, HASH_VERSION)) if cache_dir is not None else None
        items.append((root, blob, cache))
    results = run_chunks(hash_chunk, items, len(rels), workers=workers, progress=progress, desc=desc)
    keys: list[str | None] = []
    problems: list[tuple[str, str]] = []
    for k, res in enumerate(results):
        part = rels[k * CHUNK:(k + 1) * CHUNK]
        if not res.ok:
            keys.extend([None] * len(part))
            problems.extend((_text(r), f"not hashed: {res.error}") for r in part)
            continue
        for i, digest in enumerate(res.value["s"]):
            keys.append(digest or None)
        for i, msg in res.value["e"].items():
            problems.append((_text(part[int(i)]), msg))
    return keys, problems


def key_hashes(keys: Iterable[str | None], block: int = 100_000) -> np.ndarray:
    """64-bit hashes of the keys that are not None, as a uint64 array.

    A million keys cost 8 MB instead of ~100 MB of Python strings and a set; two different keys
    share a 64-bit hash with probability ~n²/2⁶⁵ (3·10⁻⁸ for a million), far below a rounding of %.
    """
    parts = []
    it = iter(keys)
    while True:
        raw = list(itertools.islice(it, block))
        if not raw:
            break
        present = [k for k in raw if k is not None]
        if present:
            try:
                parts.append(pd.util.hash_array(np.asarray(present, dtype=object), categorize=False))
            except UnicodeEncodeError:  # a file name that is not UTF-8: compared in its \xNN-escaped form
                present = table_texts(present)
                parts.append(pd.util.hash_array(np.asarray(present, dtype=object), categorize=False))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


def folder_keys(listing: Listing, by: str, *, workers=None, progress=True, cache_dir=None, desc="sha256"):
    """(keys, problems) of every listed file of a folder (keys: a list or a generator of str or None)."""
    if by in ("id", "name"):
        return listing.iter_stems(), []
    rels = listing.relpaths_bytes(range(len(listing)))
    return _hash_files(os.path.abspath(listing.root), rels, workers=workers, progress=progress,
                       cache_dir=cache_dir, desc=desc)


def check_manifest_keys(m: Manifest, by: str) -> None:
    """A UserError, before any work, when a manifest lacks the columns ``--overlap-by`` needs."""
    if by == "id" and m.ids is None and m.files is None:
        raise UserError(f"manifest {str(m.path)!r} has no ID or image file column to compare by id")
    if by == "name" and m.files is None:
        raise UserError(f"manifest {str(m.path)!r} has no image file column to compare by name; use --overlap-by id")
    if by == "sha256" and m.sha256 is None and m.files is None:
        raise UserError(f"manifest {str(m.path)!r} has neither a sha256 nor an image file column "
                        "to compare by content")


def manifest_keys(m: Manifest, by: str, *, workers=None, progress=True, cache_dir=None, desc="sha256"):
    """(keys, problems) of every row of a manifest; a UserError when it lacks what ``by`` needs."""
    check_manifest_keys(m, by)
    if by == "id" and m.ids is not None:
        return [v or None for v in m.ids.tolist()], []
    if by in ("id", "name"):
        return [_stem(v) if v else None for v in m.files.tolist()], []
    if m.sha256 is not None:
        return [v.lower() or None for v in m.sha256.tolist()], []
    root = os.path.abspath(m.path.parent)
    files = m.files.tolist()
    if m.file_column == IMAGE_FILE_COLUMN:  # a MetH CSV: bare names live in data/ beside it (io.meth_csv)
        files = [os.path.relpath(resolve_image_file(root, f), root) if f else f for f in files]
    rels = [os.fsencode(f) for f in files if f]
    keys_present, problems = _hash_files(root, rels, workers=workers, progress=progress, cache_dir=cache_dir,
                                         desc=desc)
    it = iter(keys_present)
    return [next(it) if f else None for f in files], problems


def overlap_table(names: Sequence[str], keys: Sequence[Iterable[str | None] | np.ndarray]) -> pd.DataFrame:
    """One row per ordered pair (first, second): images of the first, how many also in the second, the %.

    ``keys`` per input: its keys (str, None where an image has none) or their :func:`key_hashes`.
    Every image of the first with a key counts (duplicates too); images without a key (a file that
    could not be hashed, a row without an ID) are left out of both counts.
    """
    hashes = [k if isinstance(k, np.ndarray) and k.dtype == np.uint64 else key_hashes(k) for k in keys]
    uniques = [np.unique(h) for h in hashes]
    rows = []
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i == j:
                continue
            n = len(hashes[i])
            shared = int(np.isin(hashes[i], uniques[j], assume_unique=False).sum())
            rows.append({"input_1": a, "input_2": b, "images_1": n, "also_in_2": shared,
                         "percent": round(100.0 * shared / n, 2) if n else float("nan")})
    return pd.DataFrame(rows, columns=["input_1", "input_2", "images_1", "also_in_2", "percent"])
