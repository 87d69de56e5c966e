"""From a source to units of work: samples (typed fields, file facts), then shards cut by count and bytes.

Everything a writer needs is decided here, before any output is written, so that each shard is a pure
function of its :class:`Unit` (same unit → byte-identical file, whichever worker writes it) and every
user mistake (a split that is not there, a missing image, a plan that does not cover the images) stops
the run before it starts.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from methbuild.errors import UserError
from methbuild.export.source import Source

FORMATS = ("webdataset", "parquet", "imagefolder")
FORMAT_VERSION = 1  # bump when a writer's bytes change, so reruns rewrite old shards
ROW_GROUP_BYTES = 100 * 10**6  # parquet: image bytes per row group (the Hub's own files use ~100 MB)
TAR_BLOCK = 512

# Magic bytes → the extension a loader dispatches on (webdataset decodes by member extension).
_MAGIC = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tif"),
    (b"MM\x00*", "tif"),
    (b"BM", "bmp"),
)
_INT = re.compile(r"-?\d+")


def sniff(head: bytes) -> str | None:
    """The image format of a file from its first bytes (``jpg``, ``png``, ...), or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for magic, ext in _MAGIC:
        if head.startswith(magic):
            return ext
    return None


@dataclass(frozen=True)
class Sample:
    key: str
    split: str
    path: str  # absolute path of the original image
    size: int
    mtime_ns: int
    ext: str  # by its real format
    file_name: str  # the source's file name (imagefolder's file, parquet's image.path)
    fields: dict  # every CSV column (typed) + extras + plan keys: the .json / the table columns
    label: str | None  # the label as written in the CSV
    label_value: int | float | None  # ClassLabel index (classification) or the value (regression)
    width: int | None
    height: int | None
    bucket: int | None


@dataclass(frozen=True)
class Unit:
    """One output file (a shard; for imagefolder, a batch of links) and the samples it holds."""

    fmt: str
    out: str  # the export folder (absolute)
    name: str  # the file's path relative to ``out``
    split: str
    samples: tuple[Sample, ...]
    columns: tuple[tuple[str, str], ...]  # (column, int|float|str) of the fields, in order
    task: str
    classes: tuple[str, ...]
    row_group_bytes: int = ROW_GROUP_BYTES

    @property
    def bytes(self) -> int:
        return sum(s.size for s in self.samples)

    def fingerprint(self) -> str:
        """What the file is a function of: a rerun keeps a file only when this is unchanged."""
        h = hashlib.sha256()
        head = [FORMAT_VERSION, self.fmt, self.name, self.split, self.columns, self.task, self.classes,
                self.row_group_bytes]
        h.update(json.dumps(head, sort_keys=True).encode())
        for s in self.samples:
            h.update(json.dumps([s.key, s.path, s.size, s.mtime_ns, s.ext, s.file_name, s.fields, s.label,
                                 s.label_value, s.width, s.height, s.bucket], sort_keys=True).encode())
        return h.hexdigest()


@dataclass
class ExportPlan:
    source: Source
    fmt: str
    splits: list[str]
    units: list[Unit]
    columns: list[tuple[str, str]]
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    @property
    def total_samples(self) -> int:
        return sum(len(v) for v in self.samples.values())

    @property
    def total_bytes(self) -> int:
        return sum(u.bytes for u in self.units)


def _is_float(v: str) -> bool:
    try:
        return math.isfinite(float(v))
    except ValueError:
        return False


def _column_kinds(src: Source) -> list[tuple[str, str]]:
    """Each CSV column's type: int/float when the source declares it so and every non-empty value parses."""
    kinds = []
    for col in src.columns:
        filled = [r[col] for r in src.rows if r[col] != ""]
        kind = "str"
        if col in src.spec.int_cols or (col == src.spec.label_col and src.task == "regression"):
            if all(_INT.fullmatch(v) for v in filled):
                kind = "int"
        if col in src.spec.float_cols and all(_is_float(v) for v in filled):
            kind = "float"
        kinds.append((col, kind))
    for extra in src.extra_columns():
        kinds.append((extra, "str" if extra == "split" else "int"))
    return kinds


def _typed(value: str, kind: str):
    if kind == "str":
        return value
    if value == "":
        return None
    return int(value) if kind == "int" else float(value)


def _key_order(keys: list[str]) -> list[int]:
    """Row positions in key order: numeric when every key is an integer, else text."""
    if all(_INT.fullmatch(k) for k in keys):
        return sorted(range(len(keys)), key=lambda i: int(keys[i]))
    return sorted(range(len(keys)), key=lambda i: keys[i])


def read_bucket_plan(path: str | os.PathLike) -> list[dict]:
    """The rows of a PLAN.csv of ``methbuild buckets`` (given as the CSV or as its prefix)."""
    import csv

    csv_path = Path(path)
    if csv_path.suffix.lower() in (".json", ".png"):
        csv_path = csv_path.with_suffix(".csv")
    elif csv_path.suffix.lower() != ".csv":
        csv_path = Path(f"{csv_path}.csv")
    if not csv_path.is_file():
        raise UserError(f"--plan {str(path)!r}: no such plan ({csv_path} does not exist); make one with "
                        "`methbuild buckets SRC --out PLAN`")
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = reader.fieldnames or []
    except (csv.Error, UnicodeDecodeError, OSError) as exc:
        raise UserError(f"--plan {str(csv_path)!r} cannot be read: {exc}") from None
    need = ["path", "width", "height", "bucket", "padded_width", "padded_height"]
    missing = [c for c in need if c not in header]
    if missing:
        raise UserError(f"--plan {str(csv_path)!r} is not a PLAN.csv of `methbuild buckets` "
                        f"(no column(s) {', '.join(missing)})")
    return rows


class _PlanLookup:
    """Finds an image's row of a PLAN.csv: by ID when the plan has one, else by file name."""

    def __init__(self, records: list[dict]):
        self.by_id: dict[str, dict] = {}
        self.by_name: dict[str, dict | None] = {}
        if records and all((r.get("id") or "").strip() for r in records):
            self.by_id = {r["id"].strip(): r for r in records}
        for r in records:
            name = os.path.basename(str(r["path"]).replace("\\", "/"))
            self.by_name[name] = None if name in self.by_name else r  # None: ambiguous

    def find(self, key: str, file_name: str) -> dict | None:
        if self.by_id:
            return self.by_id.get(key)
        return self.by_name.get(file_name)


def make_plan(src: Source, fmt: str, out: str | os.PathLike, *, splits: list[str] | None = None,
              shard_size: int = 10_000, shard_bytes: int = 10**9, bucket_plan: str | os.PathLike | None = None,
              row_group_bytes: int = ROW_GROUP_BYTES) -> ExportPlan:
    """Check the request against the source and cut it into units of work (see the module notes)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}")
    if shard_size < 1:
        raise UserError(f"--shard-size must be at least 1 (got {shard_size})")
    if not (isinstance(shard_bytes, int) and shard_bytes >= 1):
        raise UserError(f"--shard-bytes must be a positive number of bytes (got {shard_bytes!r})")
    present = src.splits
    if not present:
        raise UserError(f"SRC {str(src.root)!r} has no images to export")
    if splits:
        unknown = [s for s in splits if s not in present]
        if unknown:
            raise UserError(f"--split {','.join(unknown)}: not in {src.name} (its splits: {', '.join(present)})")
        chosen = list(dict.fromkeys(splits))
    else:
        chosen = present
    lookup = _PlanLookup(read_bucket_plan(bucket_plan)) if bucket_plan else None

    spec = src.spec
    ours = {"parquet": ("image", "label"), "imagefolder": ("file_name", "label")}.get(fmt, ())
    clash = [c for c in src.columns if c in ours]
    if clash:
        raise UserError(f"{src.name}: its column {clash[0]!r} has the name of the column {fmt} export adds; "
                        "rename it in the CSV")
    kinds = _column_kinds(src)
    kind_of = dict(kinds)
    out = os.path.abspath(out)
    classes = tuple(src.classes)
    class_index = {c: i for i, c in enumerate(classes)}
    missing: list[str] = []
    unknown_format: list[str] = []
    not_planned: list[str] = []
    mismatched: list[str] = []
    per_split: dict[str, list[Sample]] = {}
    for split in chosen:
        records = [r for r in src.rows if r["_split"] == split]
        keys = [r[spec.id_col] for r in records]
        bad = [k for k in keys if k == "" or re.search(r"[./\\\s]", k)]
        if bad:
            raise UserError(f"{src.name}: {len(bad)} sample id(s) are empty or hold '.', '/', or spaces "
                            f"(e.g. {bad[0]!r}); a WebDataset key cannot")
        if len(set(keys)) != len(keys):
            seen_keys: set[str] = set()
            dup = next(k for k in keys if k in seen_keys or seen_keys.add(k))
            raise UserError(f"{src.name}: id {dup!r} appears twice in split {split!r}")
        samples = []
        for i in _key_order(keys):
            r = records[i]
            key = keys[i]
            path = r["_path"]
            try:
                st = os.stat(path)
                with open(path, "rb") as fh:
                    head = fh.read(16)
            except OSError as exc:
                missing.append(f"{path} ({exc.strerror or exc})")
                continue
            ext = sniff(head)
            if ext is None:
                unknown_format.append(path)
                continue
            fields = {col: _typed(r[col], kind_of[col]) for col in src.columns}
            w = fields.get(spec.width_col) if spec.width_col else None
            h = fields.get(spec.height_col) if spec.height_col else None
            if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
                from methbuild.io.imageinfo import probe

                try:
                    info = probe(path)
                except ValueError as exc:
                    unknown_format.append(f"{path} ({exc})")
                    continue
                w, h = info.width, info.height
            if spec.split_col is None:
                fields["split"] = split
            if spec.width_col is None:
                fields["width"] = w
            if spec.height_col is None:
                fields["height"] = h
            label = r[spec.label_col] if spec.label_col else None
            if src.task == "classification":
                label_value = class_index[label]
            elif src.task == "regression":
                label_value = int(label)
            else:
                label, label_value = None, None
            file_name = os.path.basename(path)
            bucket = None
            if lookup is not None:
                row = lookup.find(key, file_name)
                if row is None:
                    not_planned.append(key)
                    continue
                if (row["width"].strip(), row["height"].strip()) != (str(w), str(h)):
                    mismatched.append(f"{key} ({w}x{h} here, {row['width']}x{row['height']} in the plan)")
                    continue
                bucket = int(row["bucket"])
                fields["bucket"] = bucket
                if row.get("super_bucket"):
                    fields["super_bucket"] = int(row["super_bucket"])
                fields["padded_width"] = int(row["padded_width"])
                fields["padded_height"] = int(row["padded_height"])
            samples.append(Sample(key, split, path, st.st_size, st.st_mtime_ns, ext, file_name, fields, label,
                                  label_value, int(w), int(h), bucket))
        per_split[split] = samples

    if missing:
        raise UserError(f"{len(missing)} image file(s) of {src.name} cannot be read, e.g. {missing[0]}")
    if unknown_format:
        raise UserError(f"{len(unknown_format)} file(s) of {src.name} are not images (JPEG, PNG, WebP, TIFF, GIF, "
                        f"BMP), e.g. {unknown_format[0]}")
    if not_planned:
        raise UserError(f"--plan {str(bucket_plan)!r} does not cover {len(not_planned)} image(s) of {src.name} "
                        f"(e.g. id {not_planned[0]}); make the plan from the same dataset")
    if mismatched:
        raise UserError(f"--plan {str(bucket_plan)!r} disagrees with {src.name} on the size of {len(mismatched)} "
                        f"image(s), e.g. {mismatched[0]}; remake the plan")
    if lookup is not None:
        kinds += [(c, "int") for c in ("bucket", "super_bucket", "padded_width", "padded_height")
                  if any(c in s.fields for ss in per_split.values() for s in ss[:1])]
    if fmt == "imagefolder":
        for split, ss in per_split.items():
            seen: set[str] = set()
            for s in ss:
                if s.file_name in seen or s.file_name == "metadata.csv":
                    raise UserError(f"{src.name}: two images of split {split!r} share the file name {s.file_name!r}")
                seen.add(s.file_name)

    units = []
    for split in chosen:
        groups = cut_shards(per_split[split], shard_size, shard_bytes, fmt)
        n = len(groups)
        for i, group in enumerate(groups):
            name = shard_name(fmt, src.name, split, i, n)
            units.append(Unit(fmt, out, name, split, tuple(group), tuple(kinds), src.task, classes,
                              min(row_group_bytes, shard_bytes)))
    return ExportPlan(src, fmt, chosen, units, kinds, per_split)


def tar_member_bytes(size: int) -> int:
    """Bytes a member of ``size`` takes in a tar (one header block, data padded to 512) for short names."""
    return TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK


def _sample_bytes(s: Sample, fmt: str) -> int:
    return tar_member_bytes(s.size) + 2 * TAR_BLOCK if fmt == "webdataset" else s.size


def cut_shards(samples: list[Sample], shard_size: int, shard_bytes: int, fmt: str) -> list[list[Sample]]:
    """Consecutive groups of at most ``shard_size`` samples and ``shard_bytes`` bytes (a bigger sample alone)."""
    groups: list[list[Sample]] = []
    cur: list[Sample] = []
    cur_bytes = 0
    for s in samples:
        b = _sample_bytes(s, fmt)
        if cur and (len(cur) >= shard_size or cur_bytes + b > shard_bytes):
            groups.append(cur)
            cur, cur_bytes = [], 0
        cur.append(s)
        cur_bytes += b
    if cur:
        groups.append(cur)
    return groups


def shard_name(fmt: str, name: str, split: str, i: int, n: int) -> str:
    """A unit's file, relative to the export folder."""
    if fmt == "webdataset":
        return f"{name}-{split}-{i:06d}.tar"
    if fmt == "parquet":
        return f"{split}/{split}-{i:05d}-of-{n:05d}.parquet"
    return f"{split}/.links-{i:06d}"  # imagefolder: a batch of links, known by its done record only
