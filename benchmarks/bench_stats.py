"""Benchmark `methbuild stats`: header reading speed and listing memory.

1. Header reading: 100,000 small generated files (mixed JPEG/PNG, made once into
   benchmarks/out/stats/files/), files per second of our chunked reader (process pool) against a
   single-process loop of Pillow's lazy ``Image.open(p).size``, in the same command, alternating
   runs, medians. Target: ≥ 1.5× on 2 cores.
2. Listing + sampling a tree of 1,000,000 empty ``.jpg`` files (made once into
   benchmarks/out/stats/tree/) in a fresh process: seconds and peak RSS, against the same process
   importing the same modules and listing nothing. Target: < 500 MB.

    .venv/bin/python benchmarks/bench_stats.py            # full (first run generates the files)
    .venv/bin/python benchmarks/bench_stats.py --quick    # 20,000 files, 200,000-entry tree
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from methbuild.executor import default_workers, run_tasks  # noqa: E402
from methbuild.stats.inputs import list_images, read_listing_sizes, sample_positions  # noqa: E402

OUT = REPO / "benchmarks" / "out" / "stats"
PER_DIR = 1000


def _make_images(item: tuple[str, int, int]) -> int:
    """Task: write ``n`` small images (JPEG or PNG, 32–512 px a side, smooth content) into ``folder``."""
    from PIL import Image

    folder, start, n = item
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(start,)))
    for k in range(start, start + n):
        w, h = (int(v) for v in rng.integers(32, 513, 2))
        ramp = np.add.outer(np.arange(h, dtype=np.uint16), np.arange(w, dtype=np.uint16))
        im = Image.fromarray((ramp % 256).astype(np.uint8), "L").convert("RGB")
        if k % 2:
            im.save(os.path.join(folder, f"{k:07d}.jpg"), "JPEG", quality=80)
        else:
            im.save(os.path.join(folder, f"{k:07d}.png"), "PNG", compress_level=1)
    return n


def ensure_images(n: int) -> Path:
    root = OUT / f"files-{n}"
    done = root / ".complete"
    if done.exists():
        return root
    items = [(str(root / f"{s // PER_DIR:04d}"), s, min(PER_DIR, n - s)) for s in range(0, n, PER_DIR)]
    run_tasks(_make_images, items, desc=f"generating {n:,} images", unit="folder")
    done.write_text("ok\n")
    return root


def ensure_tree(n: int) -> Path:
    root = OUT / f"tree-{n}"
    done = root / ".complete"
    if done.exists():
        return root
    t = time.perf_counter()
    for d in range(0, n, PER_DIR):
        folder = root / f"{d // PER_DIR:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(d, min(n, d + PER_DIR)):
            fd = os.open(folder / f"n{k:08d}_{k % 7919}.jpg", os.O_CREAT | os.O_WRONLY, 0o644)
            os.close(fd)
    done.write_text("ok\n")
    print(f"made a tree of {n:,} empty files in {time.perf_counter() - t:.0f} s")
    return root


def pillow_loop(paths: list[str]) -> float:
    """The baseline: one process, Pillow's lazy open, size only."""
    from PIL import Image

    t = time.perf_counter()
    total = 0
    for p in paths:
        with Image.open(p) as im:
            total += im.size[0]
    return time.perf_counter() - t


def ours(listing, positions, workers: int) -> float:
    t = time.perf_counter()
    df = read_listing_sizes(listing, positions, workers=workers, progress=False)
    dt = time.perf_counter() - t
    assert df["error"].isna().all(), df[df["error"].notna()].head()
    return dt


CHILD = """
import json, sys, time
sys.path.insert(0, {repo!r})

def peak_mb():  # the process's peak resident set so far (VmHWM)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

from methbuild.stats.inputs import list_images, sample_positions
after_import = peak_mb()
t = time.perf_counter()
lst = list_images({root!r})
pos = sample_positions(len(lst), 100_000, 0)
paths = [lst.relpath(int(i)) for i in pos]  # the sampled paths, as the header reader gets them
print(json.dumps({{"n": len(lst), "seconds": time.perf_counter() - t, "peak_mb": peak_mb(),
                  "after_import_mb": after_import}}))
"""


def list_in_child(root: Path) -> dict:
    code = CHILD.format(repo=str(REPO), root=str(root))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 files and a 200,000-entry tree")
    ap.add_argument("--files", type=int, default=None, help="number of image files [100000; quick 20000]")
    ap.add_argument("--tree", type=int, default=None, help="entries of the listing tree [1000000; quick 200000]")
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs of each side (median reported)")
    ap.add_argument("--workers", type=int, default=None,
                    help="workers for ours (default: automatic, as the command; the pool variant uses the CPU count)")
    args = ap.parse_args()
    n_files = args.files or (20_000 if args.quick else 100_000)
    n_tree = args.tree or (200_000 if args.quick else 1_000_000)
    workers = args.workers or default_workers()  # for the forced-pool variant

    print(f"== header reading: {n_files:,} files, {workers} worker(s) for ours, {os.cpu_count()} CPUs ==")
    root = ensure_images(n_files)
    listing = list_images(root)
    assert len(listing) == n_files, len(listing)
    positions = sample_positions(len(listing), None, 0)
    paths = [os.path.join(root, listing.relpath(i)) for i in range(len(listing))]
    pillow_loop(paths[:2000])  # warm the page cache and imports for both sides
    base_t, auto_t, pool_t, one_t = [], [], [], []
    for r in range(args.repeats):
        base_t.append(pillow_loop(paths))
        auto_t.append(ours(listing, positions, args.workers))  # the command's default: automatic
        pool_t.append(ours(listing, positions, workers))  # forced process pool
        one_t.append(ours(listing, positions, 1))  # forced single process
        print(f"  run {r + 1}: pillow loop {n_files / base_t[-1]:,.0f} files/s; ours: default "
              f"{n_files / auto_t[-1]:,.0f}, pool of {workers} {n_files / pool_t[-1]:,.0f}, "
              f"one process {n_files / one_t[-1]:,.0f} files/s")
    b = statistics.median(base_t)
    print(f"median: pillow loop {n_files / b:,.0f} files/s ({b:.2f} s)")
    for label, times in (("ours, default (automatic)", auto_t), (f"ours, pool of {workers}", pool_t),
                         ("ours, one process", one_t)):
        o = statistics.median(times)
        print(f"  {label:28s} {n_files / o:9,.0f} files/s ({o:.2f} s) = {b / o:.2f}x the pillow loop"
              f"   (target >= 1.5x)")

    print(f"\n== listing + sampling 100,000 of a {n_tree:,}-entry tree (fresh process) ==")
    tree = ensure_tree(n_tree)
    runs = [list_in_child(tree) for _ in range(args.repeats)]
    assert all(r["n"] == n_tree for r in runs)
    secs = statistics.median(r["seconds"] for r in runs)
    peak = max(r["peak_mb"] for r in runs)
    imp = statistics.median(r["after_import_mb"] for r in runs)
    print(f"listing+sampling: median {secs:.2f} s ({n_tree / secs:,.0f} entries/s); peak RSS {peak:.0f} MB "
          f"(after the imports: {imp:.0f} MB; listing and sampling add {peak - imp:.0f} MB)   (target < 500 MB)")

    print(f"\n== the whole command on the {n_tree:,}-entry tree and the {n_files:,} images (overlap by id) ==")
    out = OUT / "command"
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "methbuild", "stats", str(tree), str(root), "--name", "tree",
                           "--name", "images", "--out", str(out), "--fresh"], capture_output=True, text=True,
                          cwd=REPO)
    secs = time.perf_counter() - t
    assert proc.returncode == 0, proc.stderr[-2000:]
    import resource

    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest process run so far
    print(f"methbuild stats: {secs:.1f} s, peak RSS of the largest process {rss:.0f} MB")


if __name__ == "__main__":
    main()
