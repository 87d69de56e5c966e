"""Padding against the number of buckets: B2B, equal-count boundaries and one bucket (PLAN.png)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from methbuild.buckets.boundaries import bucketize, padding_percent


@dataclass
class Curve:
    superbuckets: int
    buckets: list[int]  # M, buckets per super-bucket
    total_buckets: list[int]  # buckets actually made (fewer when sizes repeat)
    b2b: list[float]  # padding %
    equal: list[float]
    one_bucket: float
    chosen: int  # the M of the plan


def curve_points(chosen: int) -> list[int]:
    """M values to draw: 1..8, the plan's M, and a few in between when it is larger."""
    return sorted(set(range(1, 9)) | {chosen} | {m for m in (12, 16, 24, 32, 48, 64) if m < chosen})


CURVE_SAMPLE = 100_000  # larger collections: the curve is computed on an evenly spaced sample of this many
INLINE_BELOW = 20_000  # fewer images than this: the curve is drawn in this process (a pool costs ~0.5 s)


def curve_point(item: tuple) -> tuple[int, int, int]:
    """Task: (B2B padding, equal-count padding, buckets made) for one M.

    B2B re-cuts each of the plan's regular super-bucket by aspect ratio into M buckets (its pixel
    boundaries kept: the expensive super-bucket search is not repeated per M); outlier buckets keep their
    padding. Equal-count is equal-count boundaries at both levels over all images (the baseline).
    """
    from methbuild.buckets.boundaries import aspect_key, partition

    w, h, groups, fixed, superbuckets, m, seed, restarts = item
    pad, made = fixed, 0
    for s, idx in enumerate(groups):
        ar = aspect_key(w[idx], h[idx])
        o = np.argsort(ar, kind="stable")
        part = partition(w[idx][o], h[idx][o], ar[o], m, seed=seed, spawn_key=(8, 1, s), restarts=restarts)
        pad += part.padding
        made += len(part.starts)
    eq = bucketize(w, h, superbuckets, m, method="equal")
    return pad, eq.padding_equal_count, made


def padding_curve(w, h, plan, *, seed: int = 0, restarts: int = 4, points: list[int] | None = None,
                  progress: bool = True, workers: int | None = None) -> Curve:
    """Padding % against M at the plan's super-buckets (B2B) and equal-count boundaries (one task per M)."""
    from methbuild.executor import run_tasks

    from methbuild.buckets.boundaries import group_padding

    w = np.asarray(w, dtype=np.int64)
    h = np.asarray(h, dtype=np.int64)
    meta = plan.meta
    sb = plan.rows["super_bucket"].to_numpy()
    bk = plan.rows["bucket"].to_numpy()
    if w.size > CURVE_SAMPLE:  # every s-th image: the curve's percentages, not the plan's, come from a sample
        sel = np.arange(0, w.size, -(-w.size // CURVE_SAMPLE))
        w, h, sb, bk = w[sel], h[sel], sb[sel], bk[sel]
    area = int((w * h).sum())
    one = padding_percent(int(w.size * w.max() * h.max()) - area, area)
    outliers = {s["id"] for s in meta["super_buckets"] if s["outlier"]}
    fixed = sum(group_padding(w[bk == b["id"]], h[bk == b["id"]]) for b in meta["buckets"]
                if b["super_bucket"] in outliers)
    order = np.argsort(sb, kind="stable")
    cuts = np.searchsorted(sb[order], np.arange(len(meta["super_buckets"]) + 1))
    groups = [order[cuts[s]:cuts[s + 1]] for s in range(len(meta["super_buckets"])) if s not in outliers]
    k, chosen = meta["settings"]["superbuckets"], meta["settings"]["buckets"]
    ms = points or curve_points(chosen)
    items = [(w, h, groups, fixed, k, m, seed, restarts) for m in ms]
    results = run_tasks(curve_point, items, workers=1 if w.size < INLINE_BELOW else workers,
                        desc="padding curve", unit="M", progress=progress)
    b2b, eq, tot = [], [], []
    for res in results:
        if not res.ok:
            raise RuntimeError(f"padding curve: {res.error}")
        pb, pe, nb = res.value
        b2b.append(padding_percent(pb, area))
        eq.append(padding_percent(pe, area))
        tot.append(nb)
    return Curve(len(groups), ms, tot, b2b, eq, one, chosen)


def draw(curve: Curve, path: str | os.PathLike, title: str = "") -> None:
    """Write the figure to ``path`` (PNG) atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from methbuild.io.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    x = curve.buckets
    ax.plot(x, curve.b2b, "o-", color="tab:blue", label=f"B2B heuristic (K={curve.superbuckets} super-buckets)")
    ax.plot(x, curve.equal, "s--", color="tab:orange", label=f"equal-count boundaries (K={curve.superbuckets})")
    ax.axhline(curve.one_bucket, color="tab:red", linestyle=":", label="one bucket")
    if curve.chosen in x:
        i = x.index(curve.chosen)
        ax.plot([curve.chosen], [curve.b2b[i]], "o", markersize=12, markerfacecolor="none", color="black",
                label=f"this plan (M={curve.chosen}, {curve.total_buckets[i]} buckets)")
    ax.set_xlabel("buckets per super-bucket (M)")
    ax.set_ylabel("padding (% of padded pixels)")
    ax.set_ylim(0, max(5.0, curve.one_bucket * 1.08, max(curve.equal) * 1.08))
    ax.set_xticks(x)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "Padding against the number of buckets", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
