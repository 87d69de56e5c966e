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
    """{"settings", "curve": {...}, "buckets": [...], "padding": {...}, "source"} for the sizes given.

    Without ``plan``: the plan ``methbuild buckets`` makes with K = M = 4 and the table's memory model.
    With ``plan``: the table of that PLAN.json, and the curve at its own K and M.
    """
    import pandas as pd

    from methbuild.buckets.memory import human_bytes
    from methbuild.buckets.plan import Options, make_plan
    from methbuild.buckets.plot import padding_curve

    w = np.asarray(width, dtype=np.int64)
    h = np.asarray(height, dtype=np.int64)
    sizes = pd.DataFrame({"path": np.arange(w.size).astype(str), "width": w, "height": h})
    if plan is not None:
        meta = _read_plan(plan)
        st = meta.get("settings", {})
        k, m = int(st.get("superbuckets", DEFAULT_K)), int(st.get("buckets", DEFAULT_M))
        curve_plan = make_plan(sizes, Options(superbuckets=k, buckets=m, seed=int(st.get("seed", seed))))
        source = f"PLAN {Path(plan).name}"
    else:
        k, m = DEFAULT_K, DEFAULT_M
        curve_plan = make_plan(sizes, Options(superbuckets=k, buckets=m, model=DEFAULT_MODEL, dtype=DEFAULT_DTYPE,
                                              memory_budget=DEFAULT_BUDGET, seed=seed))
        meta = curve_plan.meta
        st = meta.get("settings", {})
        source = "default plan"
    rows = [{"bucket": b.get("id", b.get("bucket")), "super_bucket": b.get("super_bucket"),
             "images": b.get("images"),
             "mp_min": (b.get("min_pixels") or 0) / 1e6, "mp_max": (b.get("max_pixels") or 0) / 1e6,
             "aspect_min": b.get("min_aspect"), "aspect_max": b.get("max_aspect"),
             "padded": f"{b.get('padded_width')}×{b.get('padded_height')}",
             "padding_percent": b.get("padding_percent"),
             "batch_size": b.get("batch_size") if b.get("batch_size") else (b.get("status") or "does not fit"),
             "memory_per_batch": human_bytes(b["bytes_per_batch"]) if b.get("bytes_per_batch") else "–"}
            for b in meta.get("buckets", [])]
    pad = meta.get("padding", {})
    padding = {key: (pad.get(key) or {}).get("percent") for key in ("b2b", "equal_count", "one_bucket")}
    settings = {"superbuckets": k, "buckets": m, "model": st.get("model"), "dtype": st.get("dtype"),
                "train": st.get("train"), "memory_budget": human_bytes(st.get("memory_budget_bytes", 0)),
                "seed": st.get("seed", seed), "plan_images": meta.get("images")}
    curve = padding_curve(w, h, curve_plan, seed=seed, progress=progress)
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
