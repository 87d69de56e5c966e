"""What a statistics input is: a folder of images or a manifest table, listed, sampled, then measured.

A folder is listed with ``os.scandir`` into a compact :class:`Listing` (one ``bytearray`` of names
plus two integer arrays, no object per file), so a tree of a million files costs tens of MB.
The listing is sorted (each folder's entries by name, folders depth first), so the same tree gives
the same listing on any filesystem, and ``--sample N`` draws its N positions from it with a seeded
generator *before* any file is opened. Only the sampled files' headers are read, in chunks of
:data:`CHUNK` files through :func:`methbuild.executor.run_tasks`.

Symlinked files are followed; symlinked folders too, but every folder is visited once (by device
and inode), so a symlink loop is reported and skipped instead of followed forever. Folders that
cannot be read are reported, never fatal.

A manifest is a CSV or Parquet table with width and height columns — a MetH CSV
(``ID, Label, Image file, Width, Height, ...``) or a crawl manifest
(``object_id, status, image_file, width, height, bytes, sha256, ...``); column names match
whatever their case or spacing. A row without a size is counted as unreadable.
"""

from __future__ import annotations

import os
import stat
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from methbuild.errors import UserError
from methbuild.executor import run_tasks
from methbuild.stats.headers import chunk_cache_name, read_chunk

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "jpe", "jfif", "png", "tif", "tiff", "webp", "bmp", "gif"})
MANIFEST_SUFFIXES = frozenset({".csv", ".parquet", ".pq"})
CHUNK = 500  # files per task: big enough to hide the pool's per-task cost, small enough to balance
INLINE_BELOW = 2000  # fewer files than this are read in this process (a pool costs ~0.35 s to start)
POOL_WORTH_SECONDS = 2.0  # automatic mode: a pool only when the rest would take longer than this in-process
MAX_LISTED_OTHERS = 1000  # non-image files: all counted, this many listed
# The largest side we accept, from a header or a manifest: PNG's own limit. Anything larger is a lie
# (a manifest's 1e30, a forged header) and is listed as a problem; up to it, width·height stays
# exact in int64 (megapixels and product_size never wrap around).
MAX_SIDE = 2**31 - 1

# Column aliases, compared after lower-casing and removing spaces, underscores and dashes.
WIDTH_COLUMNS = ("width",)
HEIGHT_COLUMNS = ("height",)
ID_COLUMNS = ("id", "objectid")
FILE_COLUMNS = ("imagefile", "path", "file", "filename")
SHA_COLUMNS = ("sha256",)
FORMAT_COLUMNS = ("format",)
STATUS_COLUMNS = ("status",)
ERROR_COLUMNS = ("error",)


def _norm(col: str) -> str:
    return "".join(ch for ch in str(col).lower() if ch not in " _-")


def _find(columns, aliases) -> str | None:
    by = {_norm(c): c for c in columns}
    for a in aliases:
        if a in by:
            return by[a]
    return None


@dataclass
class Listing:
    """Image files under a folder, sorted, stored compactly; plus what went wrong while listing."""

    root: Path
    dirs: list[str] = field(default_factory=list)  # relative folder paths, "" = root
    dir_of: array = field(default_factory=lambda: array("I"))  # per file: index into dirs
    ends: array = field(default_factory=lambda: array("Q"))  # per file: end offset of its name in names
    names: bytearray = field(default_factory=bytearray)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (relative path, what happened)
    other_files: int = 0  # files without an image extension (skipped)

    def __len__(self) -> int:
        return len(self.ends)

    def _name(self, i: int) -> bytes:
        start = self.ends[i - 1] if i else 0
        return bytes(self.names[start:self.ends[i]])

    def relpath_bytes(self, i: int) -> bytes:
        d = self.dirs[self.dir_of[i]]
        name = self._name(i)
        return os.fsencode(d) + b"/" + name if d else name

    def relpaths_bytes(self, positions) -> list[bytes]:
        """Relative paths (bytes) of the files at ``positions``, built without per-call overhead."""
        prefixes = [os.fsencode(d) + b"/" if d else b"" for d in self.dirs]
        names, ends, dir_of = self.names, self.ends, self.dir_of
        out = []
        for i in positions:
            i = int(i)
            out.append(prefixes[dir_of[i]] + names[ends[i - 1] if i else 0:ends[i]])
        return out

    def relpath(self, i: int) -> str:
        return os.fsdecode(self.relpath_bytes(i))

    def iter_stems(self):
        """File name without folder and extension, for every file in order (MetH files are ``<objectID>.jpg``)."""
        names, ends = self.names, self.ends
        start = 0
        for end in ends:
            name = os.fsdecode(bytes(names[start:end]))
            start = end
            stem, dot, _ = name.rpartition(".")
            yield stem if dot else name

    def stems(self) -> list[str]:
        return list(self.iter_stems())


def _is_image_name(name: str) -> bool:
    _, dot, ext = name.rpartition(".")
    return bool(dot) and ext.lower() in IMAGE_EXTENSIONS


def list_images(root: str | os.PathLike, *, progress: bool = False, desc: str = "listing") -> Listing:
    """List the image files under ``root`` recursively (see the module notes); never raises for a bad entry.

    Hidden files and folders (name starting with ".") are skipped silently, as a file browser does.
    """
    from tqdm import tqdm

    root = Path(root)
    listing = Listing(root=root)
    try:
        st = os.stat(root)
    except OSError as exc:
        raise UserError(f"cannot read input folder {str(root)!r}: {exc.strerror or exc}") from None
    seen = {(st.st_dev, st.st_ino)}
    stack = [""]  # relative folders still to visit, popped depth first in name order
    bar = tqdm(desc=desc, unit=" files", disable=not progress or None, dynamic_ncols=True, mininterval=0.5)
    while stack:
        rel = stack.pop()
        folder = os.path.join(root, rel) if rel else str(root)
        files: list[str] = []
        subdirs: list[str] = []
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    name = entry.name
                    if name.startswith("."):
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            subdirs.append(name)
                            continue
                        if entry.is_symlink():
                            try:
                                target = os.stat(entry.path)
                            except OSError as exc:
                                listing.problems.append((_join(rel, name), f"broken symlink: {exc.strerror or exc}"))
                                continue
                            if stat.S_ISDIR(target.st_mode):
                                key = (target.st_dev, target.st_ino)
                                if key in seen:
                                    listing.problems.append((_join(rel, name), "symlink to a folder already visited "
                                                             "(a loop or a duplicate): not followed"))
                                else:
                                    seen.add(key)
                                    subdirs.append(name)
                                continue
                        if _is_image_name(name):
                            if entry.is_file():  # follows a symlink; False for FIFOs, sockets, devices
                                files.append(name)
                            else:
                                listing.problems.append((_join(rel, name), "not a regular file: skipped"))
                        else:
                            listing.other_files += 1
                            if listing.other_files <= MAX_LISTED_OTHERS:
                                listing.problems.append((_join(rel, name), "not an image file name: skipped"))
                    except OSError as exc:  # a vanished entry or an unreadable symlink
                        listing.problems.append((_join(rel, name), f"cannot inspect: {exc.strerror or exc}"))
        except OSError as exc:
            listing.problems.append((rel or ".", f"cannot list folder: {exc.strerror or exc}"))
            continue
        if files:
            files.sort()
            di = len(listing.dirs)
            listing.dirs.append(rel)
            names, ends, dir_of = listing.names, listing.ends, listing.dir_of
            for name in files:
                names += os.fsencode(name)
                ends.append(len(names))
            dir_of.extend([di] * len(files))
            bar.update(len(files))
        # Real (non-symlink) subfolders: remember their inode too, so a symlink to one is not visited twice.
        for name in sorted(subdirs, reverse=True):
            sub = _join(rel, name)
            try:
                sst = os.stat(os.path.join(root, sub))
            except OSError as exc:
                listing.problems.append((sub, f"cannot inspect folder: {exc.strerror or exc}"))
                continue
            key = (sst.st_dev, sst.st_ino)
            if key in seen and not os.path.islink(os.path.join(root, sub)):
                listing.problems.append((sub, "folder already visited through a symlink: not listed twice"))
                continue
            seen.add(key)
            stack.append(sub)
    bar.close()
    return listing


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def sample_positions(n: int, sample: int | None, seed: int) -> np.ndarray:
    """Sorted positions of a seeded sample of ``sample`` out of ``n`` (all of them when ``n <= sample``)."""
    if not sample or n <= sample:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(6,)))
    return np.sort(rng.choice(n, size=sample, replace=False)).astype(np.int64)


# --- manifests ------------------------------------------------------------------------------------------------

@dataclass
class Manifest:
    """The columns of a manifest a statistics run needs (all rows, as read)."""

    path: Path
    width: pd.Series
    height: pd.Series
    ids: pd.Series | None
    files: pd.Series | None
    sha256: pd.Series | None
    formats: pd.Series | None
    reasons: pd.Series | None  # why a row has no size (status / error), when the manifest says
    file_column: str | None = None  # the column ``files`` came from (a MetH CSV's is ``Image file``)

    def __len__(self) -> int:
        return len(self.width)


def _read_table(path: Path, columns=None) -> pd.DataFrame:
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path, columns=columns)
        return pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False, usecols=columns,
                           low_memory=False)
    except UnicodeDecodeError:
        raise UserError(f"manifest {str(path)!r} is not UTF-8 (a spreadsheet re-save?); export it as UTF-8 CSV") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"cannot read manifest {str(path)!r}: {exc}") from None


def _columns(path: Path) -> list[str]:
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:
            raise UserError(f"cannot read manifest {str(path)!r}: {exc}") from None
    _utf8_head(path)
    try:
        return list(pd.read_csv(path, encoding="utf-8-sig", dtype=str, nrows=0).columns)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"cannot read manifest {str(path)!r}: {exc}") from None


def _utf8_head(path: Path) -> None:
    with open(path, "rb") as fh:
        head = fh.read(65536)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(head) < 65536 or exc.start < len(head) - 4:  # not just a character cut at the end of the block
            raise UserError(f"manifest {str(path)!r} is not UTF-8 (a spreadsheet re-save?); "
                            "export it as UTF-8 CSV") from None


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read a CSV/Parquet manifest's size, ID, file, sha256 and format columns; a UserError if it has no sizes."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"manifest {str(path)!r} does not exist")
    cols = _columns(path)
    wcol, hcol = _find(cols, WIDTH_COLUMNS), _find(cols, HEIGHT_COLUMNS)
    if not wcol or not hcol:
        shown = ", ".join(map(str, cols[:8])) + (", ..." if len(cols) > 8 else "")
        hint = " (it looks ';'-separated: a spreadsheet re-save?)" if len(cols) == 1 and ";" in str(cols[0]) else ""
        raise UserError(f"manifest {str(path)!r} has no width and height columns{hint}; its columns: {shown}")
    want = {k: _find(cols, a) for k, a in (("id", ID_COLUMNS), ("file", FILE_COLUMNS), ("sha", SHA_COLUMNS),
                                           ("fmt", FORMAT_COLUMNS), ("status", STATUS_COLUMNS),
                                           ("error", ERROR_COLUMNS))}
    if want["id"] is None:
        want["id"] = next((c for c in cols if _norm(c).endswith("id") and _norm(c)[:-2] in ("object", "image")), None)
    usecols = [c for c in dict.fromkeys([wcol, hcol, *want.values()]) if c is not None]
    df = _read_table(path, usecols)

    def num(col):  # every value as a float (NaN when not a number); manifest_sizes judges them
        return pd.to_numeric(df[col], errors="coerce").astype("float64")

    def text(col):
        if col is None:
            return None
        s = df[col]
        if pd.api.types.is_float_dtype(s) and (s.dropna() % 1 == 0).all():  # Parquet IDs with gaps: 45734.0
            s = s.astype("Int64")
        return s.astype(object).where(s.notna(), "").astype(str).str.strip()

    reasons = None
    if want["status"] or want["error"]:
        st, er = text(want["status"]), text(want["error"])
        if st is not None and er is not None:
            reasons = ("status " + st + er.where(er == "", ": " + er))
        else:
            reasons = st if st is not None else er
    return Manifest(path=path, width=num(wcol), height=num(hcol), ids=text(want["id"]), files=text(want["file"]),
                    sha256=text(want["sha"]), formats=text(want["fmt"]), reasons=reasons,
                    file_column=want["file"])


def _format_from_name(name: str) -> str:
    ext = name.rpartition(".")[2].lower()
    return {"jpg": "JPEG", "jpeg": "JPEG", "jpe": "JPEG", "jfif": "JPEG", "png": "PNG", "tif": "TIFF",
            "tiff": "TIFF", "webp": "WEBP", "bmp": "BMP", "gif": "GIF"}.get(ext, "")


def manifest_sizes(m: Manifest, positions: np.ndarray) -> pd.DataFrame:
    """The size table of the chosen rows of a manifest (columns as :func:`read_sizes`)."""
    w = m.width.iloc[positions].to_numpy(dtype="float64")
    h = m.height.iloc[positions].to_numpy(dtype="float64")
    present = np.isfinite(w) & np.isfinite(h) & (w != 0) & (h != 0)
    ok = present & valid_sides(w, h)
    ids = m.ids.iloc[positions].to_numpy(dtype=object) if m.ids is not None else None
    files = m.files.iloc[positions].to_numpy(dtype=object) if m.files is not None else None
    if files is not None:
        paths = files
    elif ids is not None:
        paths = ids
    else:
        paths = np.array([f"row {p + 2}" for p in positions], dtype=object)  # +2: header line, 1-based
    if m.formats is not None:
        fmts = m.formats.iloc[positions].str.upper().to_numpy(dtype=object)
    elif files is not None:
        fmts = np.array([_format_from_name(f) for f in files], dtype=object)
    else:
        fmts = np.full(len(positions), "", dtype=object)
    err = np.full(len(positions), None, dtype=object)
    if (~ok).any():
        reasons = m.reasons.iloc[positions].to_numpy(dtype=object) if m.reasons is not None else None
        for k in np.flatnonzero(~ok):
            if present[k]:
                err[k] = f"width/height {w[k]:g}x{h[k]:g} in the manifest: {SIDE_RULE}"
                continue
            why = f" ({reasons[k]})" if reasons is not None and reasons[k] else ""
            err[k] = "no width/height in the manifest" + why
    return _table(paths, np.where(ok, w, np.nan), np.where(ok, h, np.nan), np.where(ok, fmts, ""), err,
                  np.zeros(len(positions), dtype=bool), ids=ids)


SIDE_RULE = f"not a whole number of pixels from 1 to {MAX_SIDE:,}"


def valid_sides(w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Where both sides are whole numbers in 1..:data:`MAX_SIDE` (False for NaN)."""
    with np.errstate(invalid="ignore"):
        return ((w >= 1) & (w <= MAX_SIDE) & (h >= 1) & (h <= MAX_SIDE) & (np.floor(w) == w)
                & (np.floor(h) == h))


def _table(paths, w, h, fmts, errors, truncated, ids=None) -> pd.DataFrame:
    # the last guard before int64: a size no image can have (a forged header) is a problem, never a wrap-around
    w, h = np.asarray(w, dtype="float64"), np.asarray(h, dtype="float64")
    insane = ~(np.isnan(w) | np.isnan(h)) & ~valid_sides(w, h)
    if insane.any():
        errors = np.array(errors, dtype=object)
        for k in np.flatnonzero(insane):
            errors[k] = errors[k] or f"header declares {w[k]:g}x{h[k]:g}: {SIDE_RULE}"
        w, h = np.where(insane, np.nan, w), np.where(insane, np.nan, h)
    cols = {"path": pd.Series(paths, dtype=object)}
    if ids is not None:
        cols["id"] = pd.Series(ids, dtype=object)
    cols["width"] = pd.array(np.where(np.isnan(w), 0, w).astype("int64"), dtype="Int64")
    cols["height"] = pd.array(np.where(np.isnan(h), 0, h).astype("int64"), dtype="Int64")
    df = pd.DataFrame(cols)
    bad = np.isnan(w) | np.isnan(h)
    df.loc[bad, ["width", "height"]] = pd.NA
    df["format"] = pd.Series(fmts, dtype=object).replace("", None)
    df["error"] = pd.Series(errors, dtype=object)
    df["truncated"] = np.asarray(truncated, dtype=bool)
    return df


# --- folders: reading headers ----------------------------------------------------------------------------------

def folder_chunks(listing: Listing, positions: np.ndarray, cache_dir: Path | None = None,
                  chunk: int = CHUNK) -> list[tuple[str, bytes, str | None]]:
    """Tasks for :func:`methbuild.stats.headers.read_chunk`: ``chunk`` sampled files each."""
    root = os.path.abspath(listing.root)
    rels = listing.relpaths_bytes(positions)
    items = []
    for start in range(0, len(positions), chunk):
        blob = b"\0".join(rels[start:start + chunk])
        cache = str(cache_dir / chunk_cache_name(root, blob)) if cache_dir is not None else None
        items.append((root, blob, cache))
    return items


def chunk_results_to_table(items, results) -> pd.DataFrame:
    """Assemble the per-chunk results (``TaskResult`` list, in the order of ``items``) into one size table."""
    rels = [blob.split(b"\0") for _, blob, _ in items]
    # os.fsdecode: a file name that is not UTF-8 stays surrogate-escaped, so the path still opens the file (a
    # bucket plan maps rows back to files); the tables written to disk show it as \xNN (io.tables.table_text)
    paths = np.array([os.fsdecode(r) for part in rels for r in part], dtype=object)
    n = len(paths)
    w = np.full(n, np.nan)
    h = np.full(n, np.nan)
    fmts = np.full(n, "", dtype=object)
    errors = np.full(n, None, dtype=object)
    trunc = np.zeros(n, dtype=bool)
    shared: dict[str, str] = {}  # one object per distinct format / error text (100,000 copies are 10+ MB)
    lo = 0
    for part, res in zip(rels, results):
        hi = lo + len(part)
        if not res.ok:  # the whole task failed (a bug or a dead worker): every file of it is unreadable
            errors[lo:hi] = f"not read: {res.error}"
        else:
            v = res.value
            ww = np.asarray(v["w"], dtype=float)
            hh = np.asarray(v["h"], dtype=float)
            ww[ww < 0] = np.nan
            hh[hh < 0] = np.nan
            w[lo:hi], h[lo:hi] = ww, hh
            fmts[lo:hi] = [shared.setdefault(f, f) for f in v["f"]]
            for i, msg in v["e"].items():
                errors[lo + int(i)] = shared.setdefault(msg, msg)
            for i in v["t"]:
                trunc[lo + i] = True
        lo = hi
    return _table(paths, w, h, fmts, errors, trunc)


def is_manifest(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES


def read_sizes(input: str | os.PathLike, *, sample: int | None = None, seed: int = 0, workers: int | None = None,
               progress: bool = True, cache_dir: Path | None = None) -> pd.DataFrame:
    """Sizes of the images of one input (a folder, searched recursively, or a CSV/Parquet manifest).

    Columns: ``path`` (relative to the folder; for a manifest its image file column, else its ID),
    ``id`` (manifests with an ID column), ``width``, ``height`` (as displayed: EXIF orientation
    applied; missing when unreadable), ``format`` (Pillow's name), ``error`` (None when readable),
    ``truncated`` (the file ends before its end marker; the size is still valid).
    With ``sample`` a seeded sample of that many files is drawn before any header is read.
    """
    path = Path(input)
    if is_manifest(path):
        m = read_manifest(path)
        return manifest_sizes(m, sample_positions(len(m), sample, seed))
    if not path.exists():
        raise UserError(f"input {str(path)!r} does not exist")
    if not path.is_dir():
        raise UserError(f"input {str(path)!r} is neither a folder nor a .csv/.parquet manifest")
    listing = list_images(path, progress=progress)
    positions = sample_positions(len(listing), sample, seed)
    return read_listing_sizes(listing, positions, workers=workers, progress=progress, cache_dir=cache_dir)


def run_chunks(fn, items: list, n_files: int, *, workers: int | None = None, progress: bool = True,
               desc: str = "headers") -> list:
    """Run a chunk task over ``items`` (``n_files`` files in all) with :func:`methbuild.executor.run_tasks`.

    ``workers=None`` (automatic): the first chunk runs in this process and is timed; the rest goes to
    a process pool only when it would take more than :data:`POOL_WORTH_SECONDS` in-process. Headers
    of warm, common files read at 100,000+ files/s in one process, faster than a pool can even start;
    cold files, network filesystems and formats Pillow must parse (TIFF) are slow enough for the pool
    to pay. An explicit ``workers`` is obeyed (a pool when > 1), except under :data:`INLINE_BELOW` files.
    Results come back in the order of ``items``.
    """
    label = f"{desc} ({CHUNK} files/chunk)"
    if not items:
        return []
    if n_files < INLINE_BELOW or workers == 1:
        return run_tasks(fn, items, workers=1, desc=label, unit="chunk", progress=progress)
    if workers is not None:
        return run_tasks(fn, items, workers=workers, desc=label, unit="chunk", progress=progress)
    # Chunks cached by an interrupted run are only loaded: they run here and do not count in the timing.
    cached = [k for k, it in enumerate(items) if it[2] and os.path.exists(it[2])]
    cached_set = set(cached)
    todo = [k for k in range(len(items)) if k not in cached_set]
    out = dict(zip(cached, run_tasks(fn, [items[k] for k in cached], workers=1, progress=False)))
    if todo:
        t = time.perf_counter()
        out[todo[0]] = run_tasks(fn, [items[todo[0]]], workers=1, progress=False)[0]
        rest_seconds = (time.perf_counter() - t) * (len(todo) - 1)
        auto = 1 if rest_seconds < POOL_WORTH_SECONDS else None  # None: run_tasks' default, the CPU count
        rest = todo[1:]
        out.update(zip(rest, run_tasks(fn, [items[k] for k in rest], workers=auto, desc=label, unit="chunk",
                                       progress=progress)))
    return [out[k] for k in range(len(items))]


def read_listing_sizes(listing: Listing, positions: np.ndarray, *, workers: int | None = None, progress: bool = True,
                       cache_dir: Path | None = None, desc: str = "headers") -> pd.DataFrame:
    """Read the headers of the listed files at ``positions`` (chunked; see :func:`run_chunks` for ``workers``)."""
    items = folder_chunks(listing, positions, cache_dir)
    return chunk_results_to_table(items, run_chunks(read_chunk, items, len(positions), workers=workers,
                                                    progress=progress, desc=desc))
