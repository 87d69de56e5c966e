"""``methbuild export`` end to end: plan, skip what a previous run finished, write shards in parallel, index.

Resume. After a shard is renamed into place and fsynced (:func:`seal`, in a thread while the next
shard is being written) the run stores a small *done record* (``DIR/.methbuild-export/<shard>.json``): the fingerprint of the unit it was made from (every
sample's key, path, size, mtime and fields, the format version and options), the file's size and
mtime, and its index rows. A rerun keeps a shard only when its record's fingerprint equals the new
plan's and the file on disk still has the recorded size and mtime; anything else is written again.
A shard without a record (the run was killed between rename and record) is rewritten too, and a
recorded shard the new plan no longer has (other ``--shard-size``) is removed, so the folder never
mixes two cuts.

Parallel. A unit is a plain picklable value and :func:`write_unit` a module-level function of it,
run through :mod:`methbuild.executor` (local pool or Dask); a shard's bytes depend only on its unit.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from methbuild.errors import UserError
from methbuild.export.plan import ROW_GROUP_BYTES, FORMAT_VERSION, ExportPlan, Unit, make_plan
from methbuild.export.source import SPLIT_ORDER, open_source
from methbuild.export.writers import ImageFolderWriter, ParquetWriter, WebDatasetWriter, drop_from_cache
from methbuild.io.atomic import atomic_path, atomic_write_text, clean_stale_temps, ensure_writable_dir

RECORDS_DIR = ".methbuild-export"
EXPORT_JSON = "export.json"
INDEX = "index.parquet"


class ExportFailed(UserError):
    """Some shards could not be written (the others are kept; a rerun retries these)."""

    exit_code = 1


def _record_path(out: Path, name: str) -> Path:
    return out / RECORDS_DIR / (name.replace("/", "__") + ".json")


def _writer(unit: Unit):
    out = Path(unit.out)
    if unit.fmt == "webdataset":
        return WebDatasetWriter(out / unit.name, unit.task)
    if unit.fmt == "parquet":
        return ParquetWriter(out / unit.name, unit.columns, unit.task, unit.classes, unit.row_group_bytes)
    return ImageFolderWriter(out / unit.split)


def write_unit(unit: Unit) -> dict:
    """Write one shard (temp name, then rename); return its done record, for :func:`seal` to store."""
    writer = _writer(unit)
    try:
        for s in unit.samples:
            writer.write(s)
        writer.close()
    except BaseException as exc:
        writer.abort(exc)
        raise
    record = {"version": FORMAT_VERSION, "format": unit.fmt, "name": unit.name, "split": unit.split,
              "fingerprint": unit.fingerprint(), "samples": len(unit.samples), "bytes": unit.bytes,
              "rows": writer.rows}
    if unit.fmt != "imagefolder":
        st = os.stat(Path(unit.out) / unit.name)
        record["size"], record["mtime_ns"] = st.st_size, st.st_mtime_ns
    return record


def seal(out: Path, record: dict) -> None:
    """Make a written shard durable (fsync), then store its done record: only then does a rerun keep it.

    A run killed between a shard's rename and its seal leaves a shard without a record, which the
    rerun writes again; so a record never names a shard that a power cut could have left unwritten.
    The sealed shard's pages are dropped from the page cache (written once, read by someone else later).
    """
    shard = out / record["name"]
    # The shard's data (not for imagefolder: links), then its folder (the rename), then the record.
    for path in ([shard] if record["format"] != "imagefolder" else []) + [shard.parent]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            if path == shard:
                drop_from_cache(fd)
        finally:
            os.close(fd)
    path = _record_path(out, record["name"])
    path.parent.mkdir(exist_ok=True)
    atomic_write_text(path, json.dumps(record) + "\n", fsync=False)


def _import_pyarrow() -> None:
    import pyarrow as pa
    import pyarrow.parquet  # noqa: F401

    pa.array([0], type=pa.int64())  # pyarrow imports pandas on its first array (0.3 s): here, not at the end


def _load_record(path: Path) -> dict | None:
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and "name" in rec and "fingerprint" in rec else None


def _is_complete(unit: Unit, rec: dict | None) -> bool:
    if rec is None or rec.get("fingerprint") != unit.fingerprint():
        return False
    out = Path(unit.out)
    if unit.fmt == "imagefolder":
        return all((out / unit.split / s.file_name).exists() for s in unit.samples)
    try:
        st = os.stat(out / unit.name)
    except FileNotFoundError:
        return False
    return (st.st_size, st.st_mtime_ns) == (rec.get("size"), rec.get("mtime_ns"))


@dataclass
class ExportResult:
    plan: ExportPlan
    written: int
    kept: int
    removed: int
    bytes_written: int
    seconds: float
    files: list[str]


def _remove_stale(out: Path, plan: ExportPlan) -> int:
    """Remove recorded shards of the exported splits that the new plan does not have."""
    want = {u.name for u in plan.units}
    removed = 0
    rec_dir = out / RECORDS_DIR
    rec_dir.mkdir(exist_ok=True)
    wanted_files = {(s.split, s.file_name) for ss in plan.samples.values() for s in ss}
    for path in sorted(rec_dir.glob("*.json")):
        rec = _load_record(path)
        if rec is None:
            path.unlink(missing_ok=True)
            continue
        if rec["name"] in want or rec.get("split") not in plan.splits:
            continue
        if rec.get("format") == "imagefolder":
            for row in rec.get("rows", []):
                if (row["split"], row["file_name"]) not in wanted_files:
                    (out / row["split"] / row["file_name"]).unlink(missing_ok=True)
        else:
            (out / rec["name"]).unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        removed += 1
    # Shards of ours with no record (a run killed between a rename and its seal, under another cut).
    name = plan.source.name
    for split in plan.splits:
        pattern = {"webdataset": f"{name}-{split}-[0-9]*.tar",
                   "parquet": f"{split}/{split}-[0-9]*-of-[0-9]*.parquet"}.get(plan.fmt)
        if pattern is None:
            continue
        for shard in sorted(out.glob(pattern)):
            rel = shard.relative_to(out).as_posix()
            if rel not in want and not _record_path(out, rel).exists():
                shard.unlink(missing_ok=True)
                removed += 1
    return removed


def _check_format(out: Path, fmt: str) -> None:
    meta = out / EXPORT_JSON
    if not meta.is_file():
        return
    try:
        prev = json.loads(meta.read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        return
    if prev and prev != fmt:
        raise UserError(f"--out {str(out)!r} holds a {prev} export; export {fmt} to another folder")


def export(src: str | os.PathLike, fmt: str, out: str | os.PathLike, *, splits: list[str] | None = None,
           shard_size: int = 10_000, shard_bytes: int = 10**9, bucket_plan: str | os.PathLike | None = None,
           workers: int | None = None, progress: bool = True, row_group_bytes: int = ROW_GROUP_BYTES,
           command: str | None = None) -> ExportResult:
    """Export ``src`` to ``out`` in format ``fmt`` (see the package notes); resumable, deterministic."""
    from tqdm import tqdm

    from methbuild.executor import iter_tasks
    from methbuild.io.lock import folder_lock

    t0 = time.perf_counter()
    source = open_source(src)
    out = Path(out)
    if out.resolve() == source.root or source.root in out.resolve().parents:
        raise UserError(f"--out {str(out)!r} is inside SRC {str(source.root)!r}; export to another folder")
    ensure_writable_dir(out, "--out folder")
    with folder_lock(out, command):
        _check_format(out, fmt)
        plan = make_plan(source, fmt, out, splits=splits, shard_size=shard_size, shard_bytes=shard_bytes,
                         bucket_plan=bucket_plan, row_group_bytes=row_group_bytes)
        for folder in [out, out / RECORDS_DIR, *(out / s for s in plan.splits)]:
            clean_stale_temps(folder)
        removed = _remove_stale(out, plan)
        todo = [u for u in plan.units if not _is_complete(u, _load_record(_record_path(out, u.name)))]
        if workers is None:
            # Copying is disk-bound: on one disk a second process only adds its start-up and seeks
            # (measured in benchmarks/bench_export.py); --workers N or --scheduler spread shards out.
            workers = 1
        failures: list[str] = []
        done_bytes = 0
        if fmt == "webdataset":  # index.parquet needs pyarrow at the end: import it while the shards copy
            threading.Thread(target=_import_pyarrow, daemon=True).start()
        # Sealing (fsync, record) runs in one thread, in order, while the next shard is being written:
        # the disk writes one shard as the next is copied (both calls release the GIL).
        with ThreadPoolExecutor(max_workers=1) as sealer, \
                tqdm(total=sum(u.bytes for u in todo), desc=f"export {fmt}", unit="B", unit_scale=True,
                     disable=not progress or None, dynamic_ncols=True) as bar:
            sealing = []
            for res in iter_tasks(write_unit, todo, workers=workers):
                if res.ok:
                    sealing.append(sealer.submit(seal, out, res.value))
                    done_bytes += res.item.bytes
                    bar.update(res.item.bytes)
                else:
                    failures.append(f"{res.item.name}: {res.error}")
            for fut in sealing:
                fut.result()
        if failures:
            raise ExportFailed(f"{len(failures)} of {len(todo)} shard(s) failed, e.g. {failures[0]}; the others "
                               "are kept: rerun the same command to retry")
        files = _finish(out, plan)
    return ExportResult(plan, len(todo), len(plan.units) - len(todo), removed, done_bytes,
                        time.perf_counter() - t0, files)


def _records(out: Path) -> list[dict]:
    recs = [r for p in sorted((out / RECORDS_DIR).glob("*.json")) if (r := _load_record(p)) is not None]
    order = {s: i for i, s in enumerate(SPLIT_ORDER)}
    return sorted(recs, key=lambda r: (order.get(r.get("split"), len(order)), r.get("split", ""), r["name"]))


def _finish(out: Path, plan: ExportPlan) -> list[str]:
    """The files beside the shards: index.parquet (webdataset), metadata.csv (imagefolder), export.json."""
    files = []
    recs = _records(out)
    if plan.fmt == "webdataset":
        write_index(out / INDEX, [row for r in recs for row in r["rows"]])
        files.append(INDEX)
    if plan.fmt == "imagefolder":
        for split in plan.splits:
            write_metadata_csv(out / split / "metadata.csv", plan, split)
            files.append(f"{split}/metadata.csv")
    src = plan.source
    splits: dict = {}
    for r in recs:
        entry = splits.setdefault(r["split"], {"samples": 0, "bytes": 0, "files": []})
        entry["samples"] += r["samples"]
        entry["bytes"] += r["bytes"]
        if r.get("format") != "imagefolder":
            entry["files"].append(r["name"])
    meta = {"format": plan.fmt, "name": src.name, "source": str(src.root), "source_kind": src.spec.kind,
            "task": src.task, "classes": src.classes, "columns": [c for c, _ in plan.columns], "splits": splits,
            "made_by": "methbuild export"}
    atomic_write_text(out / EXPORT_JSON, json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    files.append(EXPORT_JSON)
    return files


def write_index(path: Path, rows: list[dict]) -> None:
    """DIR/index.parquet: one row per sample, with the image member's data offset and length in its shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("shard", pa.string()), ("key", pa.string()), ("member", pa.string()),
                        ("offset", pa.int64()), ("length", pa.int64()), ("width", pa.int64()),
                        ("height", pa.int64()), ("label", pa.string()), ("cls", pa.int64()),
                        ("split", pa.string()), ("bucket", pa.int64())])
    table = pa.table({f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in schema}, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_metadata_csv(path: Path, plan: ExportPlan, split: str) -> None:
    """``<split>/metadata.csv``: file_name, label (the class index), then every CSV column."""
    import csv
    import io

    cols = [c for c, _ in plan.columns]
    has_label = plan.source.task in ("classification", "regression")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file_name", *(["label"] if has_label else []), *cols])
    for s in plan.samples[split]:
        vals = ["" if s.fields.get(c) is None else s.fields.get(c) for c in cols]
        w.writerow([s.file_name, *([s.label_value] if has_label else []), *vals])
    atomic_write_text(path, buf.getvalue())
