"""The report's one door into :mod:`methbuild.buckets`: every call into the bucketing code is here.

:func:`bucketing_section` returns plain data (the padding curve and the bucket table) for a
default plan of the dataset's sizes, or the table of an existing PLAN (``--plan``) with the curve
of its own settings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from methbuild.errors import UserError

DEFAULT_K = 4
DEFAULT_M = 4
# Batch sizes of the table: VGG16 inference in bf16 on an 80 GB accelerator (docs/buckets.md's memory model).
DEFAULT_MODEL, DEFAULT_DTYPE, DEFAULT_BUDGET = "vgg16", "bf16", 80 * 10**9


def bucketing_section(width: np.ndarray, height: np.ndarray, *, plan: str | Path | None = None, seed: int = 0,
                      progress: bool = False) -> dict:
    """{"settings", "curve": {...}, "buckets": [...], "padding": {...}, "source"} for the sizes given."""
    from methbuild.buckets.boundaries import bucketize, padding_percent
    from methbuild.buckets.memory import estimate, human_bytes
    from methbuild.buckets.plot import padding_curve

    w = np.asarray(width, dtype=np.int64)
    h = np.asarray(height, dtype=np.int64)
    area = w * h
    if plan is not None:
        meta = _read_plan(plan)
        st = meta.get("settings", {})
        k, m = int(st.get("superbuckets", DEFAULT_K)), int(st.get("buckets", DEFAULT_M))
        rows = [{"bucket": b.get("id", b.get("bucket")), "super_bucket": b.get("super_bucket"),
                 "images": b.get("images"),
                 "mp_min": b.get("min_pixels", 0) / 1e6, "mp_max": b.get("max_pixels", 0) / 1e6,
                 "aspect_min": b.get("min_aspect"), "aspect_max": b.get("max_aspect"),
                 "padded": f"{b.get('padded_width')}×{b.get('padded_height')}",
                 "padding_percent": b.get("padding_percent"), "batch_size": b.get("batch_size"),
                 "memory_per_batch": human_bytes(b["bytes_per_batch"]) if b.get("bytes_per_batch") else "–"}
                for b in meta.get("buckets", [])]
        pad = meta.get("padding", {})
        padding = {key: (pad.get(key) or {}).get("percent") for key in ("b2b", "equal_count", "one_bucket")}
        settings = {"superbuckets": k, "buckets": m, "model": st.get("model"), "dtype": st.get("dtype"),
                    "train": st.get("train"), "memory_budget": human_bytes(st.get("memory_budget_bytes", 0)),
                    "seed": st.get("seed", seed), "plan_images": meta.get("images")}
        source = f"PLAN {Path(plan).name}"
    else:
        k, m = DEFAULT_K, DEFAULT_M
        b = bucketize(w, h, k, m, seed=seed)
        total = int(area.sum())
        one = int(w.size * w.max() * h.max() - total)
        rows = []
        for bid, sb in enumerate(b.bucket_super):
            sel = b.bucket_of == bid
            bw, bh = w[sel], h[sel]
            pw, ph = int(bw.max()), int(bh.max())
            pad_px = int(bw.size * pw * ph - (bw * bh).sum())
            est = estimate(DEFAULT_MODEL, ph, pw, DEFAULT_DTYPE, False)
            fit = est.max_batch(DEFAULT_BUDGET)
            batch = min(fit, int(bw.size)) if fit >= 1 else 0
            rows.append({"bucket": bid, "super_bucket": int(sb), "images": int(bw.size),
                         "mp_min": float((bw * bh).min() / 1e6), "mp_max": float((bw * bh).max() / 1e6),
                         "aspect_min": float((bw / bh).min()), "aspect_max": float((bw / bh).max()),
                         "padded": f"{pw}×{ph}", "padding_percent": padding_percent(pad_px, int((bw * bh).sum())),
                         "batch_size": batch if batch else "does not fit",
                         "memory_per_batch": human_bytes(est.total(batch)) if batch else human_bytes(est.total(1))})
        padding = {"b2b": padding_percent(b.padding, total),
                   "equal_count": padding_percent(b.padding_equal_count, total),
                   "one_bucket": padding_percent(one, total)}
        settings = {"superbuckets": k, "buckets": m, "model": DEFAULT_MODEL, "dtype": DEFAULT_DTYPE, "train": False,
                    "memory_budget": human_bytes(DEFAULT_BUDGET), "seed": seed}
        source = "default plan"
    curve = padding_curve(w, h, k, m, seed=seed, progress=progress)
    return {"source": source, "settings": settings, "buckets": rows, "padding": padding,
            "curve": {"superbuckets": curve.superbuckets, "m": list(curve.buckets), "made": list(curve.total_buckets),
                      "b2b": list(curve.b2b), "equal": list(curve.equal), "one_bucket": curve.one_bucket,
                      "chosen": curve.chosen}}


def _read_plan(plan: str | Path) -> dict:
    p = Path(plan)
    if p.suffix.lower() in (".csv", ".png", ".json"):
        p = p.with_suffix("")
    if p.is_dir():
        p = p / "plan"
    path = Path(f"{p}.json")
    if not path.is_file():
        raise UserError(f"--plan {str(plan)!r}: no {path.name} (give the PLAN prefix written by `methbuild buckets`)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"--plan {str(path)!r} is not a plan file: {exc}") from None
