"""Build a MetH dataset from a recipe: metadata → candidates → crawl → size rule → splits → files.

The recipe decides *what* (classes, eligibility, split sizes); this module owns *how*:

1. read the MetObjects CSV (downloaded with ``met csv`` when missing);
2. rank the eligible candidates (the recipe, from metadata alone);
3. crawl only as many candidates per class as needed, in rank order, in rounds: the first
   round oversamples by the recipe's factor, later rounds by each class's observed usable
   rate — so objects without a usable image are absorbed without crawling everything;
4. keep images that meet the size rule, split them exactly (the recipe), and write
   ``<out>/<Name>/<Name>.csv`` (the published column order; ``Image file`` is the bare name
   ``<ID>.<ext>``, relative to ``data/``, as the authors' loaders join it) and
   ``<out>/<Name>/data/<ID>.<ext>`` (hard links to the crawled originals where the filesystem
   allows, else copies), a dataset card ``README.md`` and ``croissant.json``; MetH-SR also gets its
   bicubic LR test copies.

All crawling goes through :func:`methbuild.met.crawl.crawl` (resumable, polite, one state).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import filecmp
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from methbuild.errors import UserError
from methbuild.io.atomic import TMP_MARK, clean_stale_temps, ensure_writable_dir
from methbuild.io.lock import folder_lock
from methbuild.io.meth_csv import IMAGE_FILE_COLUMN, image_file_value, resolve_image_file
from methbuild.io.tables import write_table
from methbuild.met import state as crawl_state
from methbuild.met.crawl import DEFAULT_API_URL, crawl, load_objects
from methbuild.met.download import download_met_csv
from methbuild.met.metadata import read_met_csv
from methbuild.recipe import PUBLISHED_COLUMNS, Recipe, ShortClasses

EXTRA_COLUMNS = ["Accession number", "URL", "sha256"]
MAX_ROUNDS = 12
# A dataset's name is its folder under --out: one plain path component, never "." / ".." or hidden.
DATASET_NAME = re.compile(r"[^\W_][\w.-]{0,99}")
MAX_OBJECT_ID = 2**63 - 1  # the crawl state stores IDs as SQLite (64-bit) integers
MAX_SIDE = 1_000_000  # pixels: far beyond any photograph in the collection


class TransientCrawlFailures(Exception):
    """The crawl left objects in a transient state; a rerun picks them up (exit 1)."""


@dataclass
class BuildOptions:
    out: Path
    met: Path = Path("met")
    metadata: Path | None = None
    api_url: str = DEFAULT_API_URL
    scale: float = 1.0
    workers: int | None = None
    progress: bool = True
    crawl_args: dict = field(default_factory=dict)  # concurrency, api_rate, retry_base, ...
    sr_pairs: bool = False  # MetH-SR: also write the test set as BasicSR pairs (sr/GT, sr/LRbicx<s>)

    @property
    def crawl_dir(self) -> Path:
        return self.met / "crawl"


@dataclass
class BuildResult:
    name: str
    folder: Path
    csv: Path
    counts: dict[str, int]
    crawled: int
    rounds: int
    lowres: object | None = None
    sr_pairs: object | None = None  # an SrReport when BuildOptions.sr_pairs


def metadata_path(opts: BuildOptions) -> Path:
    """The MetObjects CSV to use: ``--metadata``, else ``<met>/MetObjects.csv`` (downloaded if missing)."""
    if opts.metadata is not None:
        if not Path(opts.metadata).is_file():
            raise UserError(f"--metadata {str(opts.metadata)!r} does not exist")
        return Path(opts.metadata)
    path = opts.met / "MetObjects.csv"
    if not path.is_file():
        ensure_writable_dir(opts.met, "--met folder")
        download_met_csv(None, path, progress=opts.progress)
    return path


def _objects(crawl_dir: Path) -> pd.DataFrame:
    if not (crawl_dir / "crawl.sqlite").is_file():
        return pd.DataFrame(columns=crawl_state.EXPORT_COLUMNS)
    return load_objects(crawl_dir)


def usable_candidates(recipe: Recipe, cand: pd.DataFrame, objects: pd.DataFrame) -> pd.DataFrame:
    """Candidates whose original was downloaded and meets the recipe's size rule, rank-sorted."""
    done = objects[objects["status"] == crawl_state.DOWNLOADED]
    merged = cand.merge(done[["object_id", "image_file", "width", "height", "sha256", "url"]],
                        left_on="ID", right_on="object_id", how="inner")
    merged = merged[recipe.usable(merged["width"].astype("int64"), merged["height"].astype("int64"))]
    return merged.sort_values("rank", kind="stable").reset_index(drop=True)


def next_round(recipe: Recipe, cand: pd.DataFrame, objects: pd.DataFrame, usable: pd.DataFrame,
               need: dict[str, int], first: bool) -> list[int]:
    """The next candidates to crawl: per short group, in rank order, enough for its observed usable rate."""
    tried = set(objects["object_id"].astype("int64"))
    fresh = cand[~cand["ID"].isin(tried)]
    picks: list[int] = []
    for group, missing in need.items():
        pool = fresh if group == "*" else fresh[fresh["Group"] == group]
        if first:
            factor = recipe.oversample
        else:
            attempted = cand[cand["ID"].isin(tried)] if group == "*" else cand[(cand["Group"] == group) & cand["ID"].isin(tried)]
            got = len(usable) if group == "*" else int((usable["Group"] == group).sum())
            rate = got / len(attempted) if len(attempted) else 1.0 / recipe.oversample
            factor = min(1.0 / max(rate, 0.02), 50.0) * 1.15  # a little margin over the observed rate
        take = int(np.ceil(missing * factor)) + 2
        picks.extend(int(i) for i in pool["ID"].iloc[:take])
    return sorted(set(picks))


def select(recipe: Recipe, meta: pd.DataFrame, opts: BuildOptions) -> tuple[pd.DataFrame, int, int]:
    """Crawl in rounds until every group has enough usable images; return (split table, crawled, rounds)."""
    cand = recipe.candidates(meta)
    if cand.empty:
        raise UserError(f"{recipe.title}: the metadata holds no eligible objects (public domain, with a label)")
    crawled = 0
    rounds = 0
    for rounds in range(1, MAX_ROUNDS + 1):
        objects = _objects(opts.crawl_dir)
        usable = usable_candidates(recipe, cand, objects)
        need = recipe.shortfall(usable, opts.scale)
        todo = next_round(recipe, cand, objects, usable, need, first=rounds == 1) if need else []
        unfinished = objects[~objects["status"].isin(crawl_state.FINAL)]
        relevant_unfinished = unfinished[unfinished["object_id"].isin(cand["ID"])]
        if not todo and relevant_unfinished.empty:
            break
        report = crawl(todo, opts.crawl_dir, api_url=opts.api_url, progress=opts.progress, **opts.crawl_args)
        crawled += len(todo)
        if report.exit_code != 0:
            raise TransientCrawlFailures(
                f"{report.unfinished} object(s) still failing after retries; rerun the same command to pick them up")
    usable = usable_candidates(recipe, cand, _objects(opts.crawl_dir))
    return recipe.assign(usable, opts.scale), crawled, rounds


def check_dataset_name(name: str, what: str = "--name") -> str:
    """``name`` if it is a plain folder name (letters, digits, '.', '-', '_'; starts with a letter or
    digit; at most 100 characters), else a :class:`UserError`: the name becomes ``<out>/<name>/``,
    so ``..`` or a path would write (and clean up) outside ``--out``."""
    if not DATASET_NAME.fullmatch(name):
        raise UserError(f"{what} {name!r} is not a plain folder name (letters, digits, '.', '-', '_', starting "
                        "with a letter or digit, at most 100 characters)")
    return name


def _same_bytes(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)
    return False


def _place(src: Path, dest: Path) -> None:
    """``dest`` becomes the same bytes as ``src``: a hard link if possible, else a copy; atomically."""
    if dest.is_file() and _same_bytes(src, dest):
        return
    tmp = dest.with_name(f".{dest.name}{TMP_MARK}link")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def dataset_table(recipe: Recipe, split: pd.DataFrame) -> pd.DataFrame:
    """The published columns, in order, then the extras."""
    width = split["width"].astype("int64")
    height = split["height"].astype("int64")
    ext = split["image_file"].map(lambda f: Path(str(f)).suffix or ".jpg")
    table = pd.DataFrame({
        "ID": split["ID"].astype("int64"),
        "Label": split["Label"].astype(int) if recipe.task == "regression" else split["Label"].astype(str),
        "Image file": [image_file_value(int(i), e) for i, e in zip(split["ID"], ext)],
        "Width": width,
        "Height": height,
        "Product size": width * height,
        "Aspect ratio": (width / height).round(6),
        "Split": split["Split"],
        "Accession number": split.get("Accession number", pd.Series([""] * len(split))).fillna(""),
        "URL": split["url"].fillna(""),
        "sha256": split["sha256"].fillna(""),
    })
    assert list(table.columns[: len(PUBLISHED_COLUMNS)]) == PUBLISHED_COLUMNS
    return table


def download_timeframe(crawl_dir: Path, ids) -> tuple[dt.datetime, dt.datetime] | None:
    """When the first and the last of these objects' originals were downloaded (from the crawl state)."""
    path = crawl_dir / "crawl.sqlite"
    if not path.is_file():
        return None
    wanted = {int(i) for i in ids}
    with crawl_state.CrawlState(path) as state:
        times = [t for oid, t in state.db.execute("SELECT object_id, updated FROM objects WHERE status=?",
                                                  (crawl_state.DOWNLOADED,)) if oid in wanted and t is not None]
    if not times:
        return None
    return tuple(dt.datetime.fromtimestamp(t, dt.timezone.utc).replace(microsecond=0) for t in (min(times), max(times)))


def write_dataset(recipe: Recipe, split: pd.DataFrame, opts: BuildOptions, *, source: str) -> tuple[Path, pd.DataFrame]:
    """Write ``<out>/<Name>/``: the CSV, ``data/`` (links), README.md and croissant.json."""
    from methbuild.dataset_card import Provenance, write_card, write_croissant

    folder = ensure_writable_dir(Path(opts.out) / recipe.title, "--out folder")
    data = ensure_writable_dir(folder / "data", "data folder")
    table = dataset_table(recipe, split)
    images = opts.crawl_dir / "images"
    csv_path = folder / f"{recipe.title}.csv"
    earlier = _earlier_build_files(csv_path, data)
    keep = set()
    for value, src in zip(table["Image file"], split["image_file"]):
        src_path = Path(str(src))
        if not src_path.is_absolute():
            src_path = images / src_path.name
        dest = resolve_image_file(folder, value)
        _place(src_path, dest)
        keep.add(dest.name)
    _remove_stale(earlier - keep, data, images)
    write_table(table, csv_path)
    write_card(recipe, table, folder, scale=opts.scale, source=source)
    write_croissant(recipe, table, folder, Provenance(source=source, api_url=str(opts.api_url), scale=opts.scale,
                                                       downloaded=download_timeframe(opts.crawl_dir, table["ID"])))
    return csv_path, table


def _earlier_build_files(csv_path: Path, data: Path) -> set[str]:
    """Names of the files in ``data/`` that the dataset's current CSV (an earlier build) lists."""
    if not csv_path.is_file():
        return set()
    try:
        values = pd.read_csv(csv_path, usecols=[IMAGE_FILE_COLUMN], dtype=str, keep_default_na=False)[IMAGE_FILE_COLUMN]
    except (ValueError, OSError):  # not one of ours (no such column, not a CSV): claim nothing
        return set()
    names = set()
    for value in values:
        path = resolve_image_file(csv_path.parent, value)
        if path.parent == data:  # only plain entries of data/, never a path elsewhere
            names.add(path.name)
    return names


def _remove_stale(names: set[str], data: Path, images: Path) -> None:
    """Remove files an earlier build placed in ``data/`` that this build does not list.

    Only a file that is a link to, or a byte-identical copy of, its original in the crawl store is
    removed (nothing is lost); anything else (a file this build did not write) is left alone.
    """
    for name in sorted(names):
        path = data / name
        if path.is_file() and not path.is_symlink() and _same_bytes(path, images / name):
            os.unlink(path)
    clean_stale_temps(data)  # links of an interrupted earlier build (.<name>.tmp-link)


def build_recipe(recipe: Recipe, opts: BuildOptions) -> BuildResult:
    """Build one dataset end to end; raises UserError / ShortClasses / TransientCrawlFailures.

    One build per ``opts.out`` at a time: a second one raises a UserError naming the first.
    """
    if not opts.scale > 0:
        raise UserError(f"--scale must be > 0 (got {opts.scale})")
    ensure_writable_dir(opts.out, "--out folder")
    with folder_lock(opts.out):
        return _build_recipe(recipe, opts)


def _build_recipe(recipe: Recipe, opts: BuildOptions) -> BuildResult:
    meta = read_met_csv(metadata_path(opts))
    split, crawled, rounds = select(recipe, meta, opts)
    csv_path, table = write_dataset(recipe, split, opts, source=f"recipe {recipe.name} {recipe.version}")
    result = BuildResult(recipe.title, csv_path.parent, csv_path, table["Split"].value_counts().to_dict(), crawled, rounds)
    scales = getattr(recipe, "lowres_scales", None)
    if scales:
        from methbuild.lowres import build_lowres

        # explicit paths, resolved here: the LR step never has to interpret the CSV's ``Image file``
        test = [resolve_image_file(csv_path.parent, f) for f in table.loc[table["Split"] == "test", "Image file"]]
        result.lowres = build_lowres(test, csv_path.parent / "lowres", scales=scales, workers=opts.workers,
                                     progress=opts.progress)
        if opts.sr_pairs:
            from methbuild.sr.pairs import write_pairs

            # BasicSR's paired layout of the same test set: GT cropped to the lcm of the scales, LR = GT / s
            result.sr_pairs = write_pairs(test, csv_path.parent / "sr", scales, workers=opts.workers,
                                          progress=opts.progress)
    return result


def read_manifest(path: Path) -> pd.DataFrame:
    """A manifest: ours (a built dataset's CSV) or a published MetH CSV with ID / Label / Split.

    Refused with a one-line :class:`UserError`: a file that is not a table, missing columns, no rows,
    an ID that is not a decimal integer in 1..2**63-1, an ID listed twice, an unknown split, a Width
    or Height that is not an integer in 1..1,000,000 (where the manifest has those columns).
    """
    if not Path(path).is_file():
        raise UserError(f"--manifest {str(path)!r} does not exist")
    try:
        df = pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path, dtype=str,
                                                                                       keep_default_na=False)
    except (ValueError, OSError) as exc:  # not a table at all (pandas' and pyarrow's parse errors are ValueErrors)
        raise UserError(f"cannot read manifest {str(path)!r}: {exc}") from None
    cols = {str(c).strip().lower(): c for c in df.columns}
    missing = [c for c in ("id", "label", "split") if c not in cols]
    if missing:
        raise UserError(f"manifest {str(path)!r} lacks column(s) {', '.join(missing)} (needs ID, Label, Split)")
    if df.empty:
        raise UserError(f"manifest {str(path)!r} has a header but no rows: nothing to build")
    ids = _parse_ints(df[cols["id"]], 1, MAX_OBJECT_ID, f"manifest {str(path)!r}: ID", "an object ID")
    dup = ids[ids.duplicated(keep=False)]
    if not dup.empty:
        listed = sorted(set(int(i) for i in dup))
        more = f" and {len(listed) - 10} more" if len(listed) > 10 else ""
        raise UserError(f"manifest {str(path)!r} lists the same object more than once: ID(s) "
                        f"{', '.join(map(str, listed[:10]))}{more}; each object may appear once, in one split")
    for col in ("width", "height"):
        if col in cols:
            _parse_ints(df[cols[col]], 1, MAX_SIDE, f"manifest {str(path)!r}: {cols[col]}", "a size in pixels",
                        allow_empty=True)
    out = pd.DataFrame({"ID": ids, "Label": df[cols["label"]].astype(str),
                        "Split": df[cols["split"]].astype(str).str.strip().str.lower()})
    out["Split"] = out["Split"].replace({"val": "validation", "valid": "validation"})
    bad = set(out["Split"]) - {"train", "validation", "test"}
    if bad:
        raise UserError(f"manifest {str(path)!r}: unknown split(s) {sorted(bad)}")
    out["sha256"] = df[cols["sha256"]].astype(str) if "sha256" in cols else ""
    if "accession number" in cols:
        out["Accession number"] = df[cols["accession number"]].astype(str)
    return out


def _parse_ints(values: pd.Series, lo: int, hi: int, what: str, kind: str, *, allow_empty: bool = False) -> pd.Series:
    """``values`` as int64, each a plain decimal integer (ASCII digits) in ``lo..hi``; else a UserError."""
    text = values.astype(str).str.strip()
    if allow_empty:
        text = text[text != ""]
    # ASCII digits only: str.isdigit() and \d also accept '²' or '٣', which int() then rejects or misreads
    bad = text[~text.str.fullmatch(r"[0-9]{1,19}")]
    if bad.empty:
        too_big = text[text.map(lambda v: not lo <= int(v) <= hi)]
        if too_big.empty:
            return text.astype("int64") if not allow_empty else values
        raise UserError(f"{what} {too_big.iloc[0]} is out of range ({lo}..{hi:,})")
    raise UserError(f"{what} {bad.iloc[0]!r} is not {kind} (a whole number {lo}..{hi:,})")


def dataset_name(manifest: Path, name: str | None) -> str:
    """The dataset's name for a manifest build: ``name`` (``--name``) or the manifest's file stem, checked."""
    if name is not None:
        return check_dataset_name(name, "--name")
    stem = Path(manifest).stem
    if not DATASET_NAME.fullmatch(stem):
        raise UserError(f"the manifest's file name {Path(manifest).name!r} does not give a plain folder name "
                        "for the dataset; pass --name NAME (letters, digits, '.', '-', '_')")
    return stem


def build_from_manifest(manifest: Path, opts: BuildOptions, *, name: str | None = None) -> BuildResult:
    """Rebuild exactly the dataset a manifest describes; verify sha256 where the manifest has it.

    The dataset goes to ``<out>/<name>/`` (``name``: checked, default the manifest's file stem).
    One build per ``opts.out`` at a time.
    """
    title = dataset_name(manifest, name)
    rows = read_manifest(manifest)
    ensure_writable_dir(opts.out, "--out folder")
    with folder_lock(opts.out):
        return _build_from_manifest(manifest, rows, title, opts)


def _build_from_manifest(manifest: Path, rows: pd.DataFrame, title: str, opts: BuildOptions) -> BuildResult:
    from methbuild.recipe import Recipe as Base

    recipe = type("ManifestRecipe", (Base,), {"title": title, "task": "regression"
                  if rows["Label"].str.fullmatch(r"-?\d+").all() and rows["Label"].ne("").all() else "classification"})()
    report = crawl(rows["ID"].tolist(), opts.crawl_dir, api_url=opts.api_url, progress=opts.progress, **opts.crawl_args)
    objects = _objects(opts.crawl_dir).set_index("object_id")
    missing, mismatched = [], []
    for oid, want in zip(rows["ID"], rows["sha256"]):
        if oid not in objects.index or objects.at[oid, "status"] != crawl_state.DOWNLOADED:
            missing.append(int(oid))
        elif want and str(want).strip() and objects.at[oid, "sha256"] != str(want).strip():
            mismatched.append(int(oid))
    if report.exit_code != 0:
        raise TransientCrawlFailures(f"{report.unfinished} object(s) still failing; rerun the same command")
    if missing or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} object(s) have no downloadable image (first: {missing[:5]})")
        if mismatched:
            parts.append(f"{len(mismatched)} image(s) differ from the manifest's sha256 (first: {mismatched[:5]})")
        raise UserError(f"cannot rebuild {title} exactly: " + "; ".join(parts))
    merged = rows.drop(columns="sha256").merge(objects.reset_index()[["object_id", "image_file", "width", "height", "sha256", "url"]],
                                                left_on="ID", right_on="object_id", how="left")
    merged["rank"] = range(len(merged))
    split = Recipe.order(merged)
    csv_path, table = write_dataset(recipe, split, opts, source=f"manifest {Path(manifest).name}")
    return BuildResult(title, csv_path.parent, csv_path, table["Split"].value_counts().to_dict(), len(rows), 1)


__all__ = ["BuildOptions", "BuildResult", "build_recipe", "build_from_manifest", "ShortClasses",
           "TransientCrawlFailures", "EXTRA_COLUMNS"]
