"""`methbuild stats` as a Python API: sizes of several inputs, their summary, figure and overlaps.

:func:`collect` lists every input, draws the seeded samples, reads the sampled headers of all
folder inputs in one pass of chunked tasks, and writes (each file atomically):

- ``images.parquet``: one row per sampled image (input, path, width, height, product_size,
  aspect_ratio, format, error, truncated);
- ``summary.csv``: one row per input (:data:`SUMMARY_COLUMNS`);
- ``problems.csv``: unreadable and truncated files, skipped non-image files, symlink loops,
  folders that could not be read, files that could not be hashed;
- ``figure.png`` / ``figure.svg``: paper 000's Figure 2 for these inputs;
- ``overlap.csv`` (two or more inputs): paper 000's Table 1 for these inputs.

Header results are cached per chunk under ``DIR/.cache/``: an interrupted run resumes where it
stopped, and a rerun with other names, groups or figure options does not read a file again.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from methbuild.errors import UserError
from methbuild.io.atomic import clean_stale_temps, ensure_writable_dir
from methbuild.io.imageinfo import DEFAULT_MAX_PIXELS
from methbuild.io.lock import folder_lock
from methbuild.io.tables import table_text, table_texts, write_table
from methbuild.stats import figure as figure_mod
from methbuild.stats.headers import read_chunk
from methbuild.stats.inputs import (Listing, Manifest, chunk_results_to_table, folder_chunks, is_manifest,
                                    list_images, manifest_sizes, read_manifest, run_chunks, sample_positions)
from methbuild.stats.overlap import (OVERLAP_BY, check_manifest_keys, folder_keys, key_hashes, manifest_keys,
                                     overlap_table)

GROUPS = figure_mod.GROUPS
DEFAULT_SAMPLE = 100_000  # paper 000: "for the three datasets larger than 100,000 images we take a sample of that size"
HR_SIDE = 500  # high resolution = at least 500×500 (SPEC §2)
# Headers declaring more pixels than this are listed as problems (their size is kept: nothing is decoded):
# a decompression bomb or a very large scan. The crawler's and lowres' --max-pixels default.
LARGE_PIXELS = DEFAULT_MAX_PIXELS

SUMMARY_COLUMNS = [
    "input", "group", "kind", "listed", "sampled", "images", "unreadable", "truncated", "other_files", "formats",
    "mp_min", "mp_q1", "mp_median", "mp_q3", "mp_max", "mp_mean",
    "ar_min", "ar_q1", "ar_median", "ar_q3", "ar_max", "ar_mean",
    "portrait_share", "share_ge_500x500", "share_gt_12mp",
]
IMAGE_COLUMNS = ["input", "path", "width", "height", "product_size", "aspect_ratio", "format", "error", "truncated"]


@dataclass
class InputSpec:
    path: Path
    name: str
    group: str
    kind: str  # "folder" or "manifest"


@dataclass
class StatsReport:
    inputs: list[InputSpec]
    images: pd.DataFrame
    summary: pd.DataFrame
    problems: pd.DataFrame
    overlap: pd.DataFrame | None = None
    figure_rows: list = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


def default_group(name: str) -> str:
    """MetH datasets (a name starting with "MetH", any case) go below the line; everything else above."""
    return "meth" if name.lower().startswith("meth") else "reference"


def resolve_inputs(paths: Sequence[str | os.PathLike], names: Sequence[str] = (),
                   groups: Sequence[str] = ()) -> list[InputSpec]:
    """Check the inputs, names and groups before any work; a UserError for any mistake."""
    if not paths:
        raise UserError("give at least one INPUT (a folder of images or a CSV/Parquet manifest)")
    if names and len(names) != len(paths):
        raise UserError(f"--name was given {len(names)} time(s) for {len(paths)} input(s); give it once per input "
                        "or not at all")
    if groups and len(groups) != len(paths):
        raise UserError(f"--group was given {len(groups)} time(s) for {len(paths)} input(s); give it once per input "
                        "or not at all")
    specs = []
    for k, p in enumerate(paths):
        p = Path(p)
        if is_manifest(p):
            kind = "manifest"
        elif p.is_dir():
            kind = "folder"
        elif not p.exists():
            raise UserError(f"input {str(p)!r} does not exist")
        else:
            raise UserError(f"input {str(p)!r} is neither a folder nor a .csv/.parquet manifest")
        name = names[k] if names else (p.stem if kind == "manifest" else (p.resolve().name or str(p)))
        name = table_text(name)  # a folder (or --name) that is not UTF-8: its \xNN-escaped form, as in the tables
        if not name.strip():
            raise UserError(f"input {k + 1} has an empty name; give --name")
        group = groups[k] if groups else default_group(name)
        if group not in GROUPS:
            raise UserError(f"group {group!r} of input {name!r} is not one of {', '.join(GROUPS)}")
        specs.append(InputSpec(p, name, group, kind))
    seen: dict[str, Path] = {}
    for s in specs:
        if s.name in seen:
            raise UserError(f"two inputs are named {s.name!r} ({str(seen[s.name])!r} and {str(s.path)!r}); "
                            "give each a --name")
        seen[s.name] = s.path
    return specs


def _formats(fmts: pd.Series) -> str:
    counts = fmts.fillna("?").value_counts()
    return " ".join(f"{k}:{v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def summarize(images: pd.DataFrame, specs: Sequence[InputSpec], listed: dict[str, int],
              other_files: dict[str, int] | None = None) -> pd.DataFrame:
    """One row per input (:data:`SUMMARY_COLUMNS`); megapixels = w·h / 10⁶, aspect ratio = w / h.

    ``other_files``: per folder input, files skipped for not having an image extension;
    ``formats``: the readable images per format, most frequent first (``JPEG:950 PNG:50``).
    """
    other_files = other_files or {}
    rows = []
    for s in specs:
        sub = images.loc[images["input"] == s.name]
        ok = sub["width"].notna() & sub["height"].notna()
        w = sub.loc[ok, "width"].to_numpy(dtype="float64")
        h = sub.loc[ok, "height"].to_numpy(dtype="float64")
        row = {"input": s.name, "group": s.group, "kind": s.kind, "listed": listed[s.name], "sampled": len(sub),
               "images": int(ok.sum()), "unreadable": int((~ok).sum()), "truncated": int(sub["truncated"].sum()),
               "other_files": int(other_files.get(s.name, 0)),
               "formats": _formats(sub.loc[ok, "format"])}
        for prefix, v in (("mp", w * h / 1e6), ("ar", w / h if len(h) else w)):
            q = np.percentile(v, [0, 25, 50, 75, 100]) if len(v) else [np.nan] * 5
            for key, val in zip(("min", "q1", "median", "q3", "max"), q):
                row[f"{prefix}_{key}"] = float(val)
            row[f"{prefix}_mean"] = float(v.mean()) if len(v) else np.nan
        n = len(w)
        row["portrait_share"] = float((h > w).mean()) if n else np.nan
        row["share_ge_500x500"] = float(((w >= HR_SIDE) & (h >= HR_SIDE)).mean()) if n else np.nan
        row["share_gt_12mp"] = float((w * h > 12e6).mean()) if n else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS).round(6)


PROBLEM_COLUMNS = ["input", "path", "problem"]


def _problems_of(images: pd.DataFrame) -> list[pd.DataFrame]:
    """Unreadable and truncated images as problem tables (vectorised: there may be 100,000 of them)."""
    bad = images.loc[images["error"].notna(), ["input", "path"]].copy()
    bad["problem"] = "unreadable: " + images.loc[bad.index, "error"].astype(str)
    tr = images.loc[images["truncated"], ["input", "path"]].copy()
    tr["problem"] = ("truncated: the " + images.loc[tr.index, "format"].astype(str)
                     + " file ends before its end marker (size from the header kept)")
    big = images.loc[(images["width"] * images["height"]).fillna(0) > LARGE_PIXELS, ["input", "path"]].copy()
    mp = (images.loc[big.index, "width"] * images.loc[big.index, "height"] / 1e6).round().astype("Int64")
    big["problem"] = ("header declares " + mp.astype(str) + f" MP, more than {LARGE_PIXELS / 1e6:.0f} MP: a "
                      "decompression bomb or a very large image (size from the header kept; nothing is decoded)")
    return [bad, tr, big]


def _problem_frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """Problems as a table; paths and messages as valid UTF-8 (a non-UTF-8 file name as \\xNN escapes)."""
    return pd.DataFrame([tuple(table_texts(r)) for r in rows], columns=PROBLEM_COLUMNS)


def collect(inputs: Sequence[str | os.PathLike], *, names: Sequence[str] = (), groups: Sequence[str] = (),
            sample: int | None = DEFAULT_SAMPLE, seed: int = 0, out: str | os.PathLike | None = None,
            workers: int | None = None, overlap_by: str = "id", figure: bool = True, fresh: bool = False,
            progress: bool = True) -> StatsReport:
    """Measure every input and write the tables and figure to ``out`` (nothing is written when ``out`` is None).

    One run per ``out`` at a time (:func:`methbuild.io.lock.folder_lock`): a second gets a UserError."""
    with contextlib.ExitStack() as held:
        return _collect(inputs, names, groups, sample, seed, out, workers, overlap_by, figure, fresh, progress, held)


def _collect(inputs, names, groups, sample, seed, out, workers, overlap_by, figure, fresh, progress,
             held: contextlib.ExitStack) -> StatsReport:
    if overlap_by not in OVERLAP_BY:
        raise UserError(f"--overlap-by must be one of {', '.join(OVERLAP_BY)}, not {overlap_by!r}")
    if sample is not None and sample < 0:
        raise UserError("--sample must be 0 (everything) or a positive number")
    specs = resolve_inputs(inputs, names, groups)
    if figure and out is not None and importlib.util.find_spec("matplotlib") is None:
        raise UserError("the figure needs matplotlib: pip install 'methbuild[plot]', or pass --no-figure")
    cache_dir = None
    if out is not None:
        out = ensure_writable_dir(out)
        held.enter_context(folder_lock(out))
        clean_stale_temps(out)
        cache_dir = out / ".cache"
        if fresh and cache_dir.exists():
            shutil.rmtree(cache_dir)
        cache_dir.mkdir(exist_ok=True)
        clean_stale_temps(cache_dir)

    # 1. List and sample every input (no image is opened yet).
    listings: dict[str, Listing] = {}
    manifests: dict[str, Manifest] = {}
    positions: dict[str, np.ndarray] = {}
    listed: dict[str, int] = {}
    for s in specs:
        if s.kind == "manifest":
            manifests[s.name] = m = read_manifest(s.path)
            if len(specs) >= 2:
                check_manifest_keys(m, overlap_by)
            listed[s.name] = len(m)
        else:
            listings[s.name] = lst = list_images(s.path, progress=progress, desc=f"listing {s.name}")
            listed[s.name] = len(lst)
        positions[s.name] = sample_positions(listed[s.name], sample or None, seed)

    # 2. Read the sampled headers of all folders in one pass of chunked tasks.
    items, spans = [], {}  # spans: input name -> its range of items
    for s in specs:
        if s.kind == "folder":
            chunk_items = folder_chunks(listings[s.name], positions[s.name], cache_dir)
            spans[s.name] = (len(items), len(items) + len(chunk_items))
            items.extend(chunk_items)
    n_files = sum(len(positions[n]) for n in spans)
    results = run_chunks(read_chunk, items, n_files, workers=workers, progress=progress,
                         desc=f"headers of {n_files:,} files")

    tables = []
    for s in specs:
        if s.kind == "folder":
            lo, hi = spans[s.name]
            t = chunk_results_to_table(items[lo:hi], results[lo:hi])
        else:
            t = manifest_sizes(manifests[s.name], positions[s.name])
        t.insert(0, "input", s.name)
        tables.append(t[["input", "path", "width", "height", "format", "error", "truncated"]])
    del results, items  # the raw chunk results are no longer needed
    images = pd.concat(tables, ignore_index=True)
    del tables
    w = images["width"].astype("Float64")
    h = images["height"].astype("Float64")
    images["product_size"] = (images["width"] * images["height"]).astype("Int64")
    images["aspect_ratio"] = (w / h).astype("Float64")
    images = images[IMAGE_COLUMNS]

    summary = summarize(images, specs, listed, {n: lst.other_files for n, lst in listings.items()})

    # 3. Problems: everything that was skipped, unreadable or suspicious.
    problems = [_problem_frame([(s.name, p, why) for p, why in listings[s.name].problems])
                for s in specs if s.kind == "folder"]
    problems.extend(_problems_of(images))

    # 4. Overlaps between every ordered pair of inputs (on all their images, not the sample), keys as
    #    64-bit hashes so that a million names cost 8 MB.
    overlap = None
    if len(specs) >= 2:
        hashes = []
        for s in specs:
            kw = dict(workers=workers, progress=progress, cache_dir=cache_dir, desc=f"sha256 of {s.name}")
            if s.kind == "folder":
                k, probs = folder_keys(listings[s.name], overlap_by, **kw)
            else:
                k, probs = manifest_keys(manifests[s.name], overlap_by, **kw)
            hashes.append(key_hashes(k))
            problems.append(_problem_frame([(s.name, p, f"not compared by content: {why}") for p, why in probs]))
        overlap = overlap_table([s.name for s in specs], hashes)
    problems_df = pd.concat([p for p in problems if len(p)] or [_problem_frame([])], ignore_index=True)

    rows = figure_mod.box_rows(images, [s.name for s in specs], [s.group for s in specs])
    report = StatsReport(specs, images, summary, problems_df, overlap, rows)
    if out is not None:
        report.written.append(write_table(images.assign(path=table_texts(images["path"].tolist())),
                                          out / "images.parquet"))
        report.written.append(write_table(summary, out / "summary.csv"))
        report.written.append(write_table(problems_df, out / "problems.csv"))
        if overlap is not None:
            report.written.append(write_table(overlap, out / "overlap.csv"))
        else:  # an overlap table from an earlier run with other inputs would be misleading
            (out / "overlap.csv").unlink(missing_ok=True)
        if figure:
            fig = figure_mod.draw(rows)
            report.written.extend(figure_mod.save(fig, out))
    return report
