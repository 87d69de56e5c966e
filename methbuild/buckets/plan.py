"""A bucket plan: sizes in, super-buckets, buckets, padded shapes and batch sizes out; PLAN.csv/json.

The sizes come from :func:`methbuild.stats.inputs.read_sizes` (a folder's headers, or a manifest's
width and height columns); the cut from :func:`methbuild.buckets.boundaries.bucketize`; the batch
sizes from :mod:`methbuild.buckets.memory`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from methbuild.buckets.boundaries import Bucketing, bucketize, padding_percent
from methbuild.buckets.memory import ACTIVATIONS, DTYPE_BYTES, MODELS, estimate, human_bytes
from methbuild.errors import UserError

PLAN_VERSION = 1
LISTED_EXCLUDED = 100  # excluded images named in PLAN.json (all are counted)


@dataclass
class Options:
    superbuckets: int = 4
    buckets: int = 4
    memory_budget: int = 16 * 2**30
    model: str = "vgg16"
    dtype: str = "fp32"
    train: bool = False
    activations: str = "all"
    seed: int = 0
    max_batch: int | None = None
    restarts: int = 4
    skip_unreadable: bool = False

    def check(self) -> None:
        if self.superbuckets < 1:
            raise UserError(f"--superbuckets must be at least 1 (got {self.superbuckets})")
        if self.buckets < 1:
            raise UserError(f"--buckets must be at least 1 (got {self.buckets})")
        if self.model not in MODELS:
            raise UserError(f"unknown model {self.model!r}: choose from {', '.join(MODELS)}")
        if self.dtype not in DTYPE_BYTES:
            raise UserError(f"unknown dtype {self.dtype!r}: choose from {', '.join(DTYPE_BYTES)}")
        if self.activations not in ACTIVATIONS:
            raise UserError(f"unknown activations mode {self.activations!r}: choose from {', '.join(ACTIVATIONS)}")
        if self.activations == "live" and self.train:
            raise UserError("--activations live applies to inference only (training keeps every forward tensor)")
        if self.memory_budget < 1:
            raise UserError("--memory-budget must be positive")
        if self.max_batch is not None and self.max_batch < 1:
            raise UserError("--max-batch must be at least 1")


@dataclass
class Plan:
    """One row per planned image (``rows``), one per bucket (``buckets``), and PLAN.json's content (``meta``)."""

    rows: pd.DataFrame
    buckets: pd.DataFrame
    meta: dict
    bucketing: Bucketing
    excluded: pd.DataFrame = field(default_factory=pd.DataFrame)


def usable_sizes(sizes: pd.DataFrame, input_name: str, skip_unreadable: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a size table into images with a positive width and height and the rest (a UserError unless skipped)."""
    w = pd.to_numeric(sizes["width"], errors="coerce")
    h = pd.to_numeric(sizes["height"], errors="coerce")
    ok = (w > 0) & (h > 0)
    ok = ok.fillna(False).astype(bool)
    bad = sizes[~ok]
    if len(bad) and not skip_unreadable:
        first = bad.iloc[0]
        why = first.get("error") if isinstance(first.get("error"), str) else "width or height is zero or missing"
        raise UserError(f"{len(bad)} of {len(sizes)} image(s) of {input_name!r} have no usable size "
                        f"(width and height must be positive), e.g. {first['path']}: {why}; "
                        "fix them or pass --skip-unreadable to leave them out of the plan")
    good = sizes[ok].reset_index(drop=True)
    if len(good) == 0:
        raise UserError(f"{input_name!r} has no image with a usable size")
    return good, bad


def make_plan(sizes: pd.DataFrame, opts: Options, *, input_name: str = "",
              excluded: pd.DataFrame | None = None) -> Plan:
    """Bucket the images of ``sizes`` (columns ``path``, optional ``id``, ``width``, ``height``)."""
    opts.check()
    t0 = time.perf_counter()
    w = sizes["width"].to_numpy(dtype=np.int64)
    h = sizes["height"].to_numpy(dtype=np.int64)
    b2b = bucketize(w, h, opts.superbuckets, opts.buckets, seed=opts.seed, restarts=opts.restarts)
    seconds = time.perf_counter() - t0
    area = w * h
    one_bucket = int(w.size * w.max() * h.max() - area.sum())
    total_area = int(area.sum())

    # Per bucket: members, extent, padded shape, padding, memory and batch size.
    recs = []
    too_big = []
    for b, s in enumerate(b2b.bucket_super):
        sel = b2b.bucket_of == b
        bw, bh = w[sel], h[sel]
        pw, ph = int(bw.max()), int(bh.max())
        pad = int(bw.size * pw * ph - (bw * bh).sum())
        est = estimate(opts.model, ph, pw, opts.dtype, opts.train, opts.activations)
        fit = est.max_batch(opts.memory_budget)
        if fit < 1:
            too_big.append((b, s, int(bw.size), pw, ph, est.total(1)))
        batch = max(1, min(fit, int(bw.size), opts.max_batch or fit))
        ar = bw / bh
        recs.append({
            "bucket": b, "super_bucket": s, "images": int(bw.size),
            "min_pixels": int((bw * bh).min()), "max_pixels": int((bw * bh).max()),
            "min_aspect": float(ar.min()), "max_aspect": float(ar.max()),
            "padded_width": pw, "padded_height": ph,
            "padding_pixels": pad, "padding_percent": padding_percent(pad, int((bw * bh).sum())),
            "batch_size": batch, "max_fitting_batch": int(fit),
            "batches": -(-int(bw.size) // batch),
            "bytes_per_image": est.bytes_per_image, "bytes_fixed": est.fixed_bytes,
            "bytes_per_batch": est.total(batch),
        })
    if too_big:
        raise UserError(_too_big_message(too_big, w, h, b2b.bucket_of, opts))
    buckets = pd.DataFrame(recs)

    rows = pd.DataFrame({"path": sizes["path"].astype(str).to_numpy()})
    if "id" in sizes.columns:
        rows["id"] = sizes["id"].to_numpy()
    rows["width"] = w
    rows["height"] = h
    rows["super_bucket"] = b2b.super_of
    rows["bucket"] = b2b.bucket_of
    rows["padded_width"] = buckets["padded_width"].to_numpy()[b2b.bucket_of]
    rows["padded_height"] = buckets["padded_height"].to_numpy()[b2b.bucket_of]

    excluded = excluded if excluded is not None else pd.DataFrame(columns=["path"])
    est1 = estimate(opts.model, 1, 1, opts.dtype, opts.train, opts.activations)
    meta = {
        "version": PLAN_VERSION,
        "input": input_name,
        "images": int(w.size),
        "excluded": int(len(excluded)),
        "excluded_examples": [
            {"path": str(r["path"]), "error": (r.get("error") if isinstance(r.get("error"), str) else None)}
            for _, r in excluded.head(LISTED_EXCLUDED).iterrows()],
        "settings": {
            "superbuckets": opts.superbuckets, "buckets": opts.buckets, "model": opts.model, "dtype": opts.dtype,
            "train": opts.train, "activations": opts.activations, "memory_budget_bytes": opts.memory_budget,
            "seed": opts.seed,
            "max_batch": opts.max_batch, "restarts": opts.restarts,
        },
        "assignment_rule": "super_bucket = number of pixel_boundaries <= width*height; within it, bucket = "
                           "its first bucket + number of its aspect_boundaries <= width/height",
        "pixel_boundaries": b2b.pixel_bounds,
        "super_buckets": [
            {"id": s, "images": int((b2b.super_of == s).sum()),
             "min_pixels": int(area[b2b.super_of == s].min()), "max_pixels": int(area[b2b.super_of == s].max()),
             "aspect_boundaries": b2b.aspect_bounds[s],
             "buckets": [b for b, ss in enumerate(b2b.bucket_super) if ss == s]}
            for s in range(len(b2b.aspect_bounds))],
        "buckets": [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} | {"id": r["bucket"]}
                    for r in recs],
        "padding": {
            "b2b": {"pixels": b2b.padding, "percent": padding_percent(b2b.padding, total_area)},
            "equal_count": {"pixels": b2b.padding_equal_count,
                            "percent": padding_percent(b2b.padding_equal_count, total_area)},
            "one_bucket": {"pixels": one_bucket, "percent": padding_percent(one_bucket, total_area)},
            "definition": "padding of a bucket = sum over its images of (max_w*max_h - w*h); percent = padding / "
                          "(padding + image pixels), the share of the padded batches that is padding",
        },
        "batches_per_epoch": int(buckets["batches"].sum()),
        "memory_model": {
            "model": opts.model, "dtype": opts.dtype, "mode": "training" if opts.train else "inference",
            "activations": "all forward tensors (+ one gradient each when training)" if opts.activations == "all"
                           else "tensors alive at once (eager inference)",
            "params": est1.params, "fixed_bytes": est1.fixed_bytes,
            "assumptions": "see methbuild/buckets/memory.py and docs/buckets.md: inference keeps every forward "
                           "tensor (or, with activations=live, the tensors alive at once); training keeps every "
                           "forward tensor and one gradient per tensor, weights + "
                           "gradients + Adam moments in fp32; no workspace or framework overhead counted",
        },
        "notes": b2b.notes,
        "heuristic_seconds": round(seconds, 3),
    }
    return Plan(rows, buckets, meta, b2b, excluded)


def _too_big_message(too_big, w, h, bucket_of, opts: Options) -> str:
    """The error for buckets where not even one image fits the budget: the worst one, and what would help."""
    b, s, n, pw, ph, need = max(too_big, key=lambda t: t[5])
    mode = "training" if opts.train else "inference"
    sel = bucket_of == b
    k = int(np.argmax(w[sel] * h[sel]))
    lw, lh = int(w[sel][k]), int(h[sel][k])
    alone = estimate(opts.model, lh, lw, opts.dtype, opts.train, opts.activations).total(1)
    more = f" (and {len(too_big) - 1} more bucket(s))" if len(too_big) > 1 else ""
    if alone <= opts.memory_budget:
        hint = (f"its largest image alone ({lw}×{lh}) would fit: more buckets (--buckets/--superbuckets) "
                "shrink the padded shapes")
    else:
        hint = f"even its largest image alone ({lw}×{lh}) needs {human_bytes(alone)}: raise the budget"
        if opts.dtype == "fp32":
            hint += " or use --dtype bf16"
        if opts.train:
            hint += " (inference needs about half)"
    return (f"bucket {b} (super-bucket {s}, {n} image(s) padded to {pw}×{ph}) needs {human_bytes(need)} for one "
            f"image ({opts.model}, {opts.dtype}, {mode}) but --memory-budget is {human_bytes(opts.memory_budget)}"
            f"{more}; {hint}")


def plan_paths(out: str | os.PathLike) -> tuple[Path, Path, Path]:
    """PLAN.csv, PLAN.json, PLAN.png for ``--out PLAN`` (a trailing .csv/.json/.png is dropped)."""
    out = Path(out)
    if out.suffix.lower() in (".csv", ".json", ".png"):
        out = out.with_suffix("")
    return Path(f"{out}.csv"), Path(f"{out}.json"), Path(f"{out}.png")


def write_plan(plan: Plan, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write PLAN.csv, then PLAN.json, each atomically.

    A previous plan's JSON (and figure) is removed first, so an interrupted run never leaves a new
    CSV beside an old JSON; the JSON records the CSV's row count and sha256, which
    :meth:`BatchPlan.load` checks.
    """
    import hashlib

    from methbuild.io.atomic import atomic_write_text
    from methbuild.io.tables import write_table

    csv_path, json_path, png_path = plan_paths(out)
    for stale in (json_path, png_path):
        stale.unlink(missing_ok=True)
    write_table(plan.rows, csv_path)
    digest = hashlib.sha256()
    with open(csv_path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    plan.meta["csv"] = {"file": csv_path.name, "rows": int(len(plan.rows)), "sha256": digest.hexdigest()}
    atomic_write_text(json_path, json.dumps(plan.meta, indent=1) + "\n")
    return csv_path, json_path


def format_table(plan: Plan) -> str:
    """The per-bucket table printed by the command."""
    head = (f"{'bucket':>6} {'super':>5} {'images':>7} {'MP range':>13} {'aspect range':>13} "
            f"{'padded WxH':>11} {'padding':>8} {'batch':>6} {'batches':>7} {'memory/batch':>12}")
    lines = [head, "-" * len(head)]
    for r in plan.buckets.itertuples():
        mp = f"{r.min_pixels / 1e6:.2f}-{r.max_pixels / 1e6:.2f}"
        ar = f"{r.min_aspect:.2f}-{r.max_aspect:.2f}"
        lines.append(f"{r.bucket:>6} {r.super_bucket:>5} {r.images:>7} {mp:>13} {ar:>13} "
                     f"{f'{r.padded_width}x{r.padded_height}':>11} {r.padding_percent:>7.1f}% {r.batch_size:>6} "
                     f"{r.batches:>7} {human_bytes(r.bytes_per_batch):>12}")
    return "\n".join(lines)
