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
from methbuild.buckets.outliers import classify, parse_rule
from methbuild.errors import UserError

PLAN_VERSION = 1
LISTED_EXCLUDED = 100  # excluded images named in PLAN.json (all are counted)


MAX_SIDE = 1_000_000  # widths and heights above this are listed as problems (no real image is that large)
SEARCH_GRIDS = ((2, 2), (3, 3), (4, 4), (6, 4), (6, 6), (8, 6), (8, 8), (12, 8), (12, 12), (16, 12), (16, 16),
                (24, 16), (20, 20), (32, 16), (24, 24), (32, 24), (32, 32), (48, 32), (64, 32), (64, 64))


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
    batch: int | None = None  # a fixed batch size (else the memory model's)
    world_size: int = 1
    last: str = "merge"  # merge | short | pad | drop
    max_padding: float | None = None  # percent: choose K × M to reach it
    min_bucket: int | None = None  # default: 32 with max_padding, else 1
    outliers: str = "auto"
    mode: str = "native"  # native | resize
    area: int = 2**20  # resize mode: target pixels per image
    step: int = 64
    upscale: bool = True

    @property
    def min_images(self) -> int:
        if self.min_bucket is not None:
            return self.min_bucket
        return 32 if self.max_padding is not None else 1

    def check(self) -> None:
        from methbuild.buckets.batchplan import LAST_POLICIES

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
        if self.batch is not None and self.batch < 1:
            raise UserError("--batch must be at least 1")
        if self.world_size < 1:
            raise UserError("--world-size must be at least 1")
        if self.last not in LAST_POLICIES:
            raise UserError(f"--last must be one of {', '.join(LAST_POLICIES)}")
        if self.max_padding is not None and not (0 < self.max_padding < 100):
            raise UserError(f"--max-padding must be between 0 and 100% (got {self.max_padding}%)")
        if self.min_images < 1:
            raise UserError("--min-bucket must be at least 1")
        if self.mode not in ("native", "resize"):
            raise UserError(f"--mode must be native or resize (got {self.mode!r})")
        if self.mode == "resize" and (self.step < 1 or self.area < self.step * self.step):
            raise UserError(f"--area must hold at least one --step × --step tile ({self.step}×{self.step})")
        parse_rule(self.outliers)


@dataclass
class Plan:
    """One row per planned image (``rows``), one per bucket (``buckets``), and PLAN.json's content (``meta``)."""

    rows: pd.DataFrame
    buckets: pd.DataFrame
    meta: dict
    excluded: pd.DataFrame = field(default_factory=pd.DataFrame)
    problems: list[str] = field(default_factory=list)  # what --strict turns into exit 1


def usable_sizes(sizes: pd.DataFrame, input_name: str, skip_unreadable: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a size table into images with a usable width and height and the rest (a UserError unless skipped).

    Usable: whole numbers from 1 to MAX_SIDE. Zero, missing, negative, fractional, NaN or absurdly large
    values (a manifest's ``1e30``) are never converted to integers (no wrap-around): they are the rest.
    """
    sizes = sizes.reset_index(drop=True)
    w = pd.to_numeric(sizes["width"], errors="coerce").astype("float64")
    h = pd.to_numeric(sizes["height"], errors="coerce").astype("float64")
    ok = (w >= 1) & (h >= 1) & (w <= MAX_SIDE) & (h <= MAX_SIDE) & (w % 1 == 0) & (h % 1 == 0)
    ok = ok.fillna(False).astype(bool)
    bad = sizes[~ok].copy()
    if len(bad):
        why = np.where((w[~ok] > MAX_SIDE) | (h[~ok] > MAX_SIDE), f"width or height above {MAX_SIDE:,} px",
                       np.where(((w[~ok] % 1) != 0) & w[~ok].notna() | ((h[~ok] % 1) != 0) & h[~ok].notna(),
                                "width or height is not a whole number",
                                "width or height is zero, negative or missing"))
        if "error" in bad.columns:
            given = bad["error"].where(bad["error"].map(lambda x: isinstance(x, str)), None)
            bad["error"] = given.where(given.notna(), pd.Series(why, index=bad.index))
        else:
            bad["error"] = why
    if len(bad) and not skip_unreadable:
        first = bad.iloc[0]
        raise UserError(f"{len(bad)} of {len(sizes)} image(s) of {input_name!r} have no usable size "
                        f"(width and height must be whole numbers from 1 to {MAX_SIDE:,}), e.g. "
                        f"{_printable(first['path'])}: {first['error']}; fix them or pass --skip-unreadable to "
                        "leave them out of the plan")
    good = sizes[ok].reset_index(drop=True)
    if len(good) == 0:
        raise UserError(f"{input_name!r} has no image with a usable size")
    good["width"] = w[ok].to_numpy(dtype=np.int64)
    good["height"] = h[ok].to_numpy(dtype=np.int64)
    return good, bad


def manifest_sizes_exact(path) -> pd.DataFrame:
    """A manifest's size table with widths and heights as read (floats), never cast to integers first.

    ``methbuild.stats.inputs.read_sizes`` casts them to int64 for its own tables, where ``1e30`` wraps
    around and ``12.5`` becomes 12; :func:`usable_sizes` must see the values as written.
    """
    from methbuild.stats.inputs import read_manifest

    m = read_manifest(path)
    n = len(m.width)
    if m.files is not None:
        paths = m.files.to_numpy(dtype=object)
    elif m.ids is not None:
        paths = m.ids.to_numpy(dtype=object)
    else:
        paths = np.array([f"row {i + 2}" for i in range(n)], dtype=object)  # +2: header line, 1-based
    cols = {"path": pd.Series(paths, dtype=object)}
    if m.ids is not None:
        cols["id"] = pd.Series(m.ids.to_numpy(dtype=object), dtype=object)
    cols["width"] = m.width.to_numpy(dtype="float64")
    cols["height"] = m.height.to_numpy(dtype="float64")
    df = pd.DataFrame(cols)
    missing = np.isnan(df["width"].to_numpy()) | np.isnan(df["height"].to_numpy())
    err = np.full(n, None, dtype=object)
    if missing.any():
        reasons = m.reasons.to_numpy(dtype=object) if m.reasons is not None else None
        for k in np.flatnonzero(missing):
            why = f" ({reasons[k]})" if reasons is not None and reasons[k] else ""
            err[k] = "no usable width/height in the manifest" + why
    df["error"] = pd.Series(err, dtype=object)
    return df


def _printable(value) -> str:
    """A path for a message: undecodable bytes (surrogate-escaped file names) shown as \\x.. escapes."""
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# --- the layout: super-buckets (groups) of buckets, each a run of a group's images in aspect order -----------------

@dataclass
class Group:
    """A super-bucket: its images (global indices) in aspect-ratio order, and where each of its buckets starts."""

    members: np.ndarray
    starts: list[int]
    outlier: str | None = None  # the condition that put its images here (an outlier group)

    def slices(self) -> list[tuple[int, int]]:
        ends = [*self.starts[1:], self.members.size]
        return list(zip(self.starts, ends))


class Layout:
    """Regular groups in pixel-count order, then outlier groups; bucket statistics and the fill merges."""

    def __init__(self, w: np.ndarray, h: np.ndarray, groups: list[Group], opts: Options):
        self.w, self.h, self.groups, self.opts = w, h, groups, opts
        self.notes: list[str] = []
        self._mem: dict[tuple[int, int], tuple[int, object]] = {}

    def stats(self, g: Group, a: int, b: int) -> tuple[int, int, int, int]:
        """(images, max width, max height, image pixels) of a run of a group."""
        idx = g.members[a:b]
        ww, hh = self.w[idx], self.h[idx]
        return int(idx.size), int(ww.max()), int(hh.max()), int((ww * hh).sum())

    @staticmethod
    def pad(st) -> int:
        return st[0] * st[1] * st[2] - st[3]

    def memory(self, pw: int, ph: int):
        """(largest batch that fits, Estimate) at a padded shape (cached: merges ask for the same shapes)."""
        key = (pw, ph)
        if key not in self._mem:
            o = self.opts
            est = estimate(o.model, ph, pw, o.dtype, o.train, o.activations)
            self._mem[key] = (est.max_batch(o.memory_budget), est)
        return self._mem[key]

    def batch(self, pw: int, ph: int, n: int) -> int:
        """The batch of a bucket of ``n`` images: --batch; else the memory model's, capped by --max-batch and by
        the bucket's share per rank (n // world size, at least 1). 0: not even one image fits."""
        fit = self.memory(pw, ph)[0]
        if fit < 1:
            return 0
        if self.opts.batch is not None:
            return self.opts.batch
        return max(1, min(fit, self.opts.max_batch or fit, n // self.opts.world_size))

    def need(self, pw: int, ph: int) -> int:
        """Images a regular bucket must hold: --min-bucket, and with --last merge --batch × world size (without
        --batch: one image per rank, the memory model's batch shrinking to the bucket's share)."""
        need = self.opts.min_images
        if self.opts.last == "merge":
            fixed = self.opts.batch if self.opts.batch is not None and self.memory(pw, ph)[0] >= 1 else 1
            need = max(need, fixed * self.opts.world_size)
        return need

    def padding(self) -> int:
        return sum(self.pad(self.stats(g, a, b)) for g in self.groups for a, b in g.slices())

    def fill(self) -> None:
        """Merge regular buckets under their need into the neighbour whose merge raises padding least.

        A neighbour is the next bucket by aspect ratio in the same super-bucket; a super-bucket that is one
        bucket too small is merged with the neighbouring super-bucket by pixel count (the union is re-cut
        into as many buckets as that neighbour had). Outlier groups are exempt.
        """
        while True:
            worst = None
            for gi, g in enumerate(self.groups):
                if g.outlier is not None:
                    continue
                for k, (a, b) in enumerate(g.slices()):
                    st = self.stats(g, a, b)
                    need = self.need(st[1], st[2])
                    if st[0] < need and (worst is None or st[0] / need < worst[0]):
                        worst = (st[0] / need, gi, k)
            if worst is None:
                return
            _, gi, k = worst
            g = self.groups[gi]
            if len(g.starts) > 1:
                sl = g.slices()
                here = self.stats(g, *sl[k])
                best = None
                for j in (k - 1, k + 1):
                    if 0 <= j < len(sl):
                        lo, hi = min(sl[j][0], sl[k][0]), max(sl[j][1], sl[k][1])
                        there = self.stats(g, *sl[j])
                        rise = self.pad(self.stats(g, lo, hi)) - self.pad(here) - self.pad(there)
                        if best is None or rise < best[0]:
                            best = (rise, j)
                del g.starts[max(k, best[1])]
                continue
            regular = [i for i, x in enumerate(self.groups) if x.outlier is None]
            pos = regular.index(gi)
            options = [regular[p] for p in (pos - 1, pos + 1) if 0 <= p < len(regular)]
            if not options:
                st = self.stats(g, 0, g.members.size)
                self.notes.append(f"all {st[0]} regular image(s) form one bucket, fewer than the "
                                  f"{self.need(st[1], st[2])} a full bucket needs (--batch × --world-size or "
                                  "--min-bucket)")
                return
            best = None
            for oi in options:
                merged = self._recut(g, self.groups[oi])
                cost = sum(self.pad(self.stats(merged, a, b)) for a, b in merged.slices())
                if best is None or cost < best[0]:
                    best = (cost, oi, merged)
            _, oi, merged = best
            lo = min(gi, oi)
            self.groups[lo] = merged
            del self.groups[max(gi, oi)]

    def _recut(self, g: Group, other: Group) -> Group:
        """The union of two neighbouring super-buckets, cut by aspect ratio into len(other.starts) buckets."""
        from methbuild.buckets.boundaries import aspect_key, partition

        idx = np.concatenate([g.members, other.members])
        px = self.w[idx] * self.h[idx]
        idx = idx[np.lexsort((idx, self.w[idx], px))]  # pixel order, then stable by aspect (as bucketize)
        ar = aspect_key(self.w[idx], self.h[idx])
        o = np.argsort(ar, kind="stable")
        idx = idx[o]
        part = partition(self.w[idx], self.h[idx], ar[o], max(1, len(other.starts)), seed=self.opts.seed,
                         spawn_key=(8, 2, int(idx[0])), restarts=self.opts.restarts, min_size=self.opts.min_images)
        return Group(idx, [int(x) for x in part.starts])


def _groups_from(b2b: Bucketing, index: np.ndarray) -> list[Group]:
    """Groups of a bucketize result over images ``index`` (its positions map to global indices)."""
    return [Group(index[m], [int(x) for x in st]) for m, st in b2b.layout]


def _outlier_groups(w, h, which, conditions, buckets: int, opts: Options) -> list[Group]:
    """One group per outlier condition met, cut by aspect ratio (B2B) into buckets of ≥ --min-bucket images."""
    from methbuild.buckets.boundaries import aspect_key, partition

    out = []
    for ci, cond in enumerate(conditions):
        idx = np.flatnonzero(which == ci)
        if idx.size == 0:
            continue
        idx = idx[np.lexsort((idx, w[idx], w[idx] * h[idx]))]
        ar = aspect_key(w[idx], h[idx])
        o = np.argsort(ar, kind="stable")
        idx = idx[o]
        part = partition(w[idx], h[idx], ar[o], buckets, seed=opts.seed, spawn_key=(8, 3, ci),
                         restarts=opts.restarts, min_size=opts.min_images)
        out.append(Group(idx, [int(x) for x in part.starts], outlier=cond.text))
    return out


def native_layout(w: np.ndarray, h: np.ndarray, opts: Options) -> tuple[Layout, dict]:
    """Super-buckets and buckets at native resolution: outliers apart, B2B (or equal-count, if better) on the rest,
    then the fill merges; with --max-padding the smallest K × M grid that reaches it."""
    conditions = parse_rule(opts.outliers)
    which = classify(w, h, conditions)
    regular = np.flatnonzero(which < 0)
    area = int((w * h).sum())
    if opts.max_padding is None:
        grids = [(opts.superbuckets, opts.buckets)]
    else:
        most = max(1, regular.size // opts.min_images)
        grids = [g for g in SEARCH_GRIDS if g[0] * g[1] <= most] or [(1, 1)]
    tried = []
    best = None
    for k, m in grids:
        here = None
        for method in ("b2b", "equal"):
            if regular.size:
                r = bucketize(w[regular], h[regular], k, m, method=method, seed=opts.seed, restarts=opts.restarts,
                              min_size=opts.min_images)
                groups = _groups_from(r, regular)
            else:
                groups = []
            lay = Layout(w, h, groups + _outlier_groups(w, h, which, conditions, m, opts), opts)
            lay.fill()
            pad = lay.padding()
            if here is None or pad < here[0]:
                here = (pad, k, m, method, lay)
        if best is None or here[0] < best[0]:
            best = here
        pct = padding_percent(here[0], area)
        tried.append({"superbuckets": k, "buckets": m, "boundaries": here[3], "padding_percent": round(pct, 3),
                      "buckets_made": sum(len(g.starts) for g in here[4].groups)})
        if opts.max_padding is not None and pct <= opts.max_padding:
            best = here
            break
    pad, k, m, method, lay = best
    info = {"superbuckets": k, "buckets": m, "boundaries": method, "tried": tried,
            "outlier_rule": ",".join(c.text.replace(" ", "") for c in conditions) or "none"}
    if method == "equal":
        lay.notes.append("equal-count boundaries padded less than B2B's after the fill merges: they are used")
    if opts.max_padding is not None and padding_percent(pad, area) > opts.max_padding:
        lay.notes.append(f"--max-padding {opts.max_padding:g}% not reached: the best grid tried ({k}×{m}) pads "
                         f"{padding_percent(pad, area):.1f}% with buckets of ≥ {opts.min_images} image(s)")
    return lay, info


def _downscale_hint(est, pw: int, ph: int, opts: Options) -> str:
    """What would let one image of a bucket fit: the budget it needs, or the factor to shrink it by."""
    need = est.total(1)
    hint = f"needs {human_bytes(need)} for one image"
    if est.fixed_bytes >= opts.memory_budget:
        return hint + f"; the weights alone need {human_bytes(est.fixed_bytes)}: raise --memory-budget"
    f = max(1.0, float(np.sqrt(est.bytes_per_image / (opts.memory_budget - est.fixed_bytes))))
    while f < 1e6:
        sw, sh = max(1, int(pw / f)), max(1, int(ph / f))
        if estimate(opts.model, sh, sw, opts.dtype, opts.train, opts.activations).total(1) <= opts.memory_budget:
            break
        f *= 1.01
    return hint + f"; fits with --memory-budget {human_bytes(need)} or downscaled by {f:.2f}× (to {sw}×{sh})"


def make_plan(sizes: pd.DataFrame, opts: Options, *, input_name: str = "",
              excluded: pd.DataFrame | None = None, image_root: str | None = None,
              image_rule: str = "folder") -> Plan:
    """Bucket the images of ``sizes`` (columns ``path``, optional ``id``, ``width``, ``height``)."""
    opts.check()
    t0 = time.perf_counter()
    w = sizes["width"].to_numpy(dtype=np.int64)
    h = sizes["height"].to_numpy(dtype=np.int64)
    if int(w.size) * int(w.max()) * int(h.max()) >= 2**62:
        raise UserError(f"{w.size} images up to {int(w.max())}×{int(h.max())} px are too many pixels to plan exactly "
                        "in 64-bit integers: split the input")
    if opts.mode == "resize":
        from methbuild.buckets.resize import resize_layout

        lay, info, extra = resize_layout(w, h, opts)
    else:
        lay, info = native_layout(w, h, opts)
        extra = None
    seconds = time.perf_counter() - t0
    area = w * h
    total_area = int(area.sum())
    one_bucket = int(w.size * w.max() * h.max() - total_area)

    recs, problems = [], []
    super_of = np.empty(w.size, dtype=np.int64)
    bucket_of = np.empty(w.size, dtype=np.int64)
    supers = []
    pixel_bounds = []
    for gi, g in enumerate(lay.groups):
        ids = []
        aspect_bounds = []
        for a, b in g.slices():
            bid = len(recs)
            idx = g.members[a:b]
            super_of[idx], bucket_of[idx] = gi, bid
            bw, bh = w[idx], h[idx]
            if extra is not None:  # resize mode: the bucket's shape is its target size
                pw, ph = extra["shapes"][gi][len(ids)]
                pad = 0
            else:
                pw, ph = int(bw.max()), int(bh.max())
                pad = int(bw.size * pw * ph - (bw * bh).sum())
                if a > 0:
                    aspect_bounds.append(float(bw[0] / bh[0]))
            fit, est = lay.memory(pw, ph)
            batch = lay.batch(pw, ph, int(idx.size))
            status = "ok"
            if fit < 1:
                status = "does not fit: " + _downscale_hint(est, pw, ph, opts)
                problems.append(f"bucket {bid} ({idx.size} image(s) at {pw}×{ph}) {status[len('does not fit: '):]}")
            elif batch > fit:
                status = f"over budget: batch {batch} needs {human_bytes(est.total(batch))}, at most {fit} fit"
                problems.append(f"bucket {bid}: {status}")
            from methbuild.buckets.batchplan import bucket_rounds

            rounds = bucket_rounds(int(idx.size), batch, opts.world_size, "drop" if opts.last == "drop" else "short")
            if batch and g.outlier is None and idx.size < batch * opts.world_size:
                problems.append(f"bucket {bid} holds {idx.size} image(s), fewer than one batch of {batch} per rank "
                                f"({opts.world_size} rank(s)); --last {opts.last} applies")
            ar = bw / bh
            recs.append({
                "bucket": bid, "super_bucket": gi, "outlier": g.outlier, "images": int(idx.size),
                "min_pixels": int((bw * bh).min()), "max_pixels": int((bw * bh).max()),
                "min_aspect": float(ar.min()), "max_aspect": float(ar.max()),
                "padded_width": pw, "padded_height": ph,
                "padding_pixels": pad, "padding_percent": padding_percent(pad, int((bw * bh).sum())),
                "batch_size": batch, "max_fitting_batch": int(fit), "status": status,
                "batches": rounds * opts.world_size, "rounds": rounds,
                "bytes_per_image": est.bytes_per_image, "bytes_fixed": est.fixed_bytes,
                "bytes_per_batch": est.total(max(batch, 1)),
            })
            ids.append(bid)
        sel = g.members
        if g.outlier is None and gi > 0:
            pixel_bounds.append(int(area[sel].min()))
        supers.append({"id": gi, "outlier": g.outlier, "images": int(sel.size),
                       "min_pixels": int(area[sel].min()), "max_pixels": int(area[sel].max()),
                       "aspect_boundaries": aspect_bounds, "buckets": ids,
                       "exempt_from_fill": g.outlier is not None})
    buckets = pd.DataFrame(recs)

    # object dtype: a surrogate-escaped file name (not valid UTF-8) cannot live in an Arrow-backed string column
    paths = np.array([str(x) for x in sizes["path"].to_numpy(dtype=object)], dtype=object)
    rows = pd.DataFrame({"path": pd.Series(paths, dtype=object)})
    if "id" in sizes.columns:
        rows["id"] = sizes["id"].to_numpy()
    rows["width"] = w
    rows["height"] = h
    rows["super_bucket"] = super_of
    rows["bucket"] = bucket_of
    if extra is not None:
        for col, values in extra["rows"].items():
            rows[col] = values
    else:
        rows["padded_width"] = buckets["padded_width"].to_numpy()[bucket_of]
        rows["padded_height"] = buckets["padded_height"].to_numpy()[bucket_of]

    excluded = excluded if excluded is not None else pd.DataFrame(columns=["path"])
    est1 = estimate(opts.model, 1, 1, opts.dtype, opts.train, opts.activations)
    equal = bucketize(w, h, info["superbuckets"], info["buckets"], method="equal")
    padding = int(buckets["padding_pixels"].sum())
    meta = {
        "version": PLAN_VERSION,
        "input": input_name,
        "image_root": image_root,
        "image_rule": image_rule,
        "mode": opts.mode,
        "images": int(w.size),
        "excluded": int(len(excluded)),
        "excluded_examples": [
            {"path": str(r["path"]), "error": (r.get("error") if isinstance(r.get("error"), str) else None)}
            for _, r in excluded.head(LISTED_EXCLUDED).iterrows()],
        "settings": {
            "superbuckets": info["superbuckets"], "buckets": info["buckets"], "model": opts.model,
            "dtype": opts.dtype, "train": opts.train, "activations": opts.activations,
            "memory_budget_bytes": opts.memory_budget, "seed": opts.seed, "max_batch": opts.max_batch,
            "restarts": opts.restarts, "batch": opts.batch, "world_size": opts.world_size, "last": opts.last,
            "max_padding_percent": opts.max_padding, "min_bucket": opts.min_images,
            "outliers": info.get("outlier_rule", "none"), "mode": opts.mode,
        } | ({"area": opts.area, "step": opts.step, "upscale": opts.upscale} if opts.mode == "resize" else {}),
        "search": info.get("tried"),
        "boundaries": info.get("boundaries"),
        "assignment_rule": ("outliers first: an image meeting a super-bucket's 'outlier' condition (in order) goes "
                            "to it; otherwise super_bucket = the regular super-bucket after counting the "
                            "pixel_boundaries <= width*height; within a super-bucket, bucket = its first bucket + "
                            "number of its aspect_boundaries <= width/height") if opts.mode == "native" else
                           "nearest bucket aspect ratio in log space (see the resize section of PLAN.json)",
        "pixel_boundaries": pixel_bounds,
        "super_buckets": supers,
        "buckets": [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} | {"id": r["bucket"]}
                    for r in recs],
        "padding": {
            "b2b": {"pixels": padding, "percent": padding_percent(padding, total_area)},
            "equal_count": {"pixels": equal.padding, "percent": padding_percent(equal.padding, total_area),
                            "grid": f"{info['superbuckets']}x{info['buckets']}"},
            "one_bucket": {"pixels": one_bucket, "percent": padding_percent(one_bucket, total_area)},
            "smallest_regular_bucket": int(min((r["images"] for r in recs if r["outlier"] is None), default=0)),
            "definition": "padding of a bucket = sum over its images of (max_w*max_h - w*h); percent = padding / "
                          "(padding + image pixels), the share of the padded batches that is padding; equal_count "
                          "is equal-count boundaries on the same grid, without outlier buckets or fill merges",
        },
        "batches_per_epoch": int(buckets["batches"].sum()),
        "batches_per_rank": int(buckets["rounds"].sum()),
        "unscheduled_images": int(buckets.loc[buckets["batch_size"] == 0, "images"].sum()),
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
        "problems": problems,
        "notes": lay.notes,
        "heuristic_seconds": round(seconds, 3),
    }
    if extra is not None:
        meta["resize"] = extra["summary"]
    return Plan(rows, buckets, meta, excluded, problems)


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

    from methbuild.io.atomic import atomic_path, atomic_write_text

    csv_path, json_path, png_path = plan_paths(out)
    for stale in (json_path, png_path):
        stale.unlink(missing_ok=True)
    with atomic_path(csv_path) as tmp:
        # A file name that is not valid UTF-8 (kept surrogate-escaped by the folder reader) is written back as its
        # original bytes, so the path in PLAN.csv opens the file; BatchPlan.load reads it the same way.
        plan.rows.to_csv(tmp, index=False, lineterminator="\n", encoding="utf-8", errors="surrogateescape")
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
                     f"{r.batches:>7} {human_bytes(r.bytes_per_batch):>12}"
                     + (f"  {r.outlier}" if isinstance(r.outlier, str) else "")
                     + ("" if r.status == "ok" else f"  {r.status.split(';')[0]}"))
    return "\n".join(lines)
