"""Benchmark the B2B heuristic: time on 100,000 sizes, padding against baselines, gap to the optimum.

Sizes are drawn to match SPEC §1's Met originals (megapixels median 6.1, Q1 2.5, Q3 10.7, clipped to
0.25–66.6; aspect ratio median 0.98, Q1 0.72, Q3 1.33, clipped to 0.11–8.4).

1. Time of ``bucketize`` (K super-buckets × M buckets, two levels, polish, restarts) on N sizes,
   median of R runs, against equal-count boundaries in the same process. Target: < 5 s for
   100,000 sizes at K = M = 4 on one core.
2. Padding % (share of padded pixels) of B2B, equal-count boundaries and one bucket, for several
   (K, M). Target: B2B ≤ 0.8 × equal-count padding at K = M = 4.
3. Gap to the optimum of one 1-D cut (the aspect-ratio cut of one super-bucket), against an
   exact dynamic programme (O(G·n²)), on 2,000 sizes.

4. The real Met sizes (``benchmarks/data/met_sizes.csv``: Width and Height of the 24,911 Met rows of
   HPAI-BSC/MAMe-baselines ``dataset/MAMe_dataset.csv``): padding % of the plan ``methbuild buckets
   --max-padding 8%`` makes (B2B + outlier buckets + buckets of ≥ 32 images), equal-count 16×16,
   and 2-D k-means (256 clusters on log w, log h); the smallest bucket of each.
5. ``methbuild buckets`` on a 1,000,000-row CSV manifest (Met-like sizes), with the padding curve:
   wall time and the peak RSS of the command (target ≤ 60 s, ≤ 1 GB on 2 cores).

    .venv/bin/python benchmarks/bench_buckets.py            # 100,000 sizes, 3 runs
    .venv/bin/python benchmarks/bench_buckets.py --quick    # 20,000 sizes, 1 run
    .venv/bin/python benchmarks/bench_buckets.py --only met,million
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from methbuild.buckets.boundaries import (aspect_key, bucketize, cut_positions, padding_percent,  # noqa: E402
                                          partition)


def met_like_sizes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = 0.6745  # the upper quartile of a standard normal
    mp = np.exp(rng.normal(np.log(6.1), np.log(10.7 / 2.5) / (2 * z), n))
    ar = np.exp(rng.normal(np.log(0.98), np.log(1.33 / 0.72) / (2 * z), n))
    mp = np.clip(mp, 0.25, 66.6) * 1e6
    ar = np.clip(ar, 0.11, 8.4)
    w = np.maximum(1, np.round(np.sqrt(mp * ar))).astype(np.int64)
    h = np.maximum(1, np.round(np.sqrt(mp / ar))).astype(np.int64)
    return w, h


def optimum(w: np.ndarray, h: np.ndarray, key: np.ndarray, groups: int) -> int:
    """Exact minimum padding of a cut into ``groups`` contiguous groups (boundaries where the key changes)."""
    n = w.size
    cuts = cut_positions(key)
    ends = np.concatenate([cuts, [n]])  # possible group ends
    starts = np.concatenate([[0], cuts])  # possible group starts
    area = np.concatenate([[0], np.cumsum(w * h)])
    inf = np.iinfo(np.int64).max // 4
    # cost[i, j] for group starts[i] .. ends[j] (i <= j), built one end at a time with reverse running maxima
    m = ends.size
    best = np.full(m, inf, dtype=np.int64)  # best padding of [0, ends[j]) with the current number of groups
    cost = np.full((m, m), inf, dtype=np.int64)
    for j in range(m):
        e = ends[j]
        s = starts[: j + 1]
        mw = np.maximum.accumulate(w[:e][::-1])[::-1][s]
        mh = np.maximum.accumulate(h[:e][::-1])[::-1][s]
        cost[: j + 1, j] = (e - s) * mw * mh - (area[e] - area[s])
    best = cost[0].copy()
    for _ in range(groups - 1):
        nxt = np.full(m, inf, dtype=np.int64)
        for j in range(1, m):
            # last group starts at starts[i] (i >= 1), previous groups end at ends[i - 1]
            cand = best[: j] + cost[1: j + 1, j]
            nxt[j] = cand.min()
        best = np.minimum(nxt, inf)
    return int(best[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20,000 sizes and one run")
    ap.add_argument("--n", type=int, default=None, help="number of sizes (default 100,000; 20,000 with --quick)")
    ap.add_argument("--runs", type=int, default=None, help="timed runs (median quoted)")
    ap.add_argument("--only", default="", help="comma-separated sections: time,padding,optimum,met,million")
    ap.add_argument("--million", type=int, default=1_000_000, help="rows of the manifest of section 5")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    if only and not only <= {"time", "padding", "optimum"}:
        if "met" in only:
            met_sizes()
        if "million" in only:
            million(args.million)
        if not only & {"time", "padding", "optimum"}:
            return
    n = args.n or (20_000 if args.quick else 100_000)
    runs = args.runs or (1 if args.quick else 3)
    w, h = met_like_sizes(n)
    area = int((w * h).sum())

    print(f"1. time on {n:,} Met-like sizes, K=4 M=4, median of {runs} run(s)")
    tb, te, cpu = [], [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        r = bucketize(w, h, 4, 4)
        tb.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        t = time.perf_counter()
        bucketize(w, h, 4, 4, method="equal")
        te.append(time.perf_counter() - t)
    mb, me = statistics.median(tb), statistics.median(te)
    print(f"   B2B {mb:.2f} s wall ({statistics.median(cpu):.2f} s CPU), equal-count {me:.2f} s, "
          f"ratio {mb / me:.1f}x; target < 5 s: "
          f"{'met' if mb < 5 else 'MISSED'}")

    print("2. padding (% of padded pixels)")
    print(f"   {'K':>3} {'M':>3} {'buckets':>7} {'B2B':>7} {'equal':>7} {'one':>7} {'B2B/equal':>9} {'seconds':>7}")
    one = padding_percent(int(n * w.max() * h.max()) - area, area)
    ratio44 = None
    for k, m in ((1, 4), (2, 2), (4, 1), (4, 4), (4, 8), (8, 8)):
        t = time.perf_counter()
        r = bucketize(w, h, k, m)
        dt = time.perf_counter() - t
        pb, pe = padding_percent(r.padding, area), padding_percent(r.padding_equal_count, area)
        ratio = r.padding / r.padding_equal_count if r.padding_equal_count else 1.0
        if (k, m) == (4, 4):
            ratio44 = ratio
        print(f"   {k:>3} {m:>3} {r.n_buckets:>7} {pb:>6.1f}% {pe:>6.1f}% {one:>6.1f}% {ratio:>9.2f} {dt:>7.2f}")
    print(f"   B2B/equal-count padding pixels at K=M=4: {ratio44:.2f}; target <= 0.80: "
          f"{'met' if ratio44 <= 0.8 else 'MISSED'}")

    print("3. one aspect-ratio cut of 2,000 sizes against the exact optimum (dynamic programme)")
    w2, h2 = met_like_sizes(2000, seed=1)
    ar = aspect_key(w2, h2)
    o = np.argsort(ar, kind="stable")
    w2, h2, ar = w2[o], h2[o], ar[o]
    a2 = int((w2 * h2).sum())
    for g in (2, 4, 8):
        t = time.perf_counter()
        opt = optimum(w2, h2, ar, g)
        t_opt = time.perf_counter() - t
        t = time.perf_counter()
        p = partition(w2, h2, ar, g)
        t_h = time.perf_counter() - t
        gap = 100 * (p.padding - opt) / opt if opt else 0.0
        print(f"   G={g}: optimum {padding_percent(opt, a2):.2f}%, B2B {padding_percent(p.padding, a2):.2f}% "
              f"(+{gap:.2f}% padding pixels), equal-count {padding_percent(p.start_padding, a2):.2f}%; "
              f"time B2B {t_h * 1000:.0f} ms vs exact {t_opt * 1000:.0f} ms")


    met_sizes()
    million(args.million)


def kmeans_log(w: np.ndarray, h: np.ndarray, k: int, seed: int = 0, iters: int = 30) -> np.ndarray:
    """2-D k-means (Lloyd, k-means++-like seeded start) on (log w, log h): a cluster id per image."""
    x = np.stack([np.log(w), np.log(h)], axis=1)
    rng = np.random.default_rng(seed)
    centres = x[rng.choice(len(x), size=k, replace=False)]
    for _ in range(iters):
        d = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        lab = d.argmin(1)
        for c in range(k):
            sel = lab == c
            if sel.any():
                centres[c] = x[sel].mean(0)
    return lab


def _padding_of(labels: np.ndarray, w: np.ndarray, h: np.ndarray) -> tuple[int, int]:
    """(padding pixels, smallest group) of a labelling."""
    pad, smallest = 0, len(w)
    for c in np.unique(labels):
        sel = labels == c
        pad += int(sel.sum() * w[sel].max() * h[sel].max() - (w[sel] * h[sel]).sum())
        smallest = min(smallest, int(sel.sum()))
    return pad, smallest


def met_sizes() -> None:
    import pandas as pd

    from methbuild.buckets.plan import Options, make_plan

    src = REPO / "benchmarks" / "data" / "met_sizes.csv"
    d = pd.read_csv(src)
    w, h = d["width"].to_numpy(np.int64), d["height"].to_numpy(np.int64)
    area = int((w * h).sum())
    print(f"4. the {len(w):,} real Met sizes ({src.relative_to(REPO)}), native resolution")
    t = time.perf_counter()
    plan = make_plan(pd.DataFrame({"path": np.arange(len(w)).astype(str), "width": w, "height": h}),
                     Options(max_padding=8.0, batch=1, memory_budget=10**13))
    dt = time.perf_counter() - t
    regular = [b["images"] for b in plan.meta["buckets"] if b["outlier"] is None]
    s = plan.meta["settings"]
    print(f"   B2B --max-padding 8%: {plan.meta['padding']['b2b']['percent']:.1f}% with "
          f"{len(plan.meta['buckets'])} buckets (K={s['superbuckets']}, M={s['buckets']}), smallest regular "
          f"bucket {min(regular)} images, outliers {sum(b['images'] for b in plan.meta['buckets'] if b['outlier'])} "
          f"in their own buckets; {dt:.1f} s; target <= 8% with every bucket >= 32: "
          f"{'met' if plan.meta['padding']['b2b']['percent'] <= 8 and min(regular) >= 32 else 'MISSED'}")
    eq = bucketize(w, h, 16, 16, method="equal")
    _, small = _padding_of(eq.bucket_of, w, h)
    print(f"   equal-count 16x16: {padding_percent(eq.padding, area):.1f}%, smallest bucket {small}")
    t = time.perf_counter()
    lab = kmeans_log(w, h, 256)
    pk, small = _padding_of(lab, w, h)
    print(f"   2-D k-means on (log w, log h), 256 clusters: {padding_percent(pk, area):.1f}%, smallest cluster "
          f"{small} ({time.perf_counter() - t:.1f} s)")


def million(n: int) -> None:
    import os
    import resource
    import subprocess
    import tempfile

    import pandas as pd

    print(f"5. methbuild buckets on a {n:,}-row CSV manifest (Met-like sizes), defaults + the padding curve")
    w, h = met_like_sizes(n, seed=5)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "m.csv"
        pd.DataFrame({"ID": np.arange(n), "Image file": [f"{i}.jpg" for i in range(n)], "Width": w,
                      "Height": h}).to_csv(src, index=False)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "methbuild", "buckets", str(src), "--out", str(Path(tmp) / "p"),
                               "--workers", "2"], capture_output=True, text=True, env=env)
        dt = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if proc.returncode != 0:
            print("   FAILED:", proc.stderr.strip().splitlines()[-1:])
            return
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("time:")), "")
        print(f"   {dt:.1f} s wall ({line}), peak RSS {rss:.0f} MB; target <= 60 s and <= 1 GB: "
              f"{'met' if dt <= 60 and rss <= 1024 else 'MISSED'}")


if __name__ == "__main__":
    main()
