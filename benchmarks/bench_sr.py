"""Speed of `methbuild sr subimages` against BasicSR's OpenCV loop, and the LMDB writer's memory, in one run.

    .venv/bin/python benchmarks/bench_sr.py            # 3 images of 12 MP, 3 repeats
    .venv/bin/python benchmarks/bench_sr.py --quick    # 2 images, 2 repeats

Setup: 12 MP photo-like JPEGs made in code (the bench_lowres generator), turned into a paired folder
by `sr pairs --scales 2 4` (GT/ 12 MP PNGs, LRbicx2/, LRbicx4/). Then, interleaved per repeat, on
the same files, each on one core:

  basicsr  a re-expression of BasicSR's extract_subimages worker: per image cv2.imread(UNCHANGED),
           BasicSR's positions (crop 480 step 240, LR crop/step divided by the scale, thresh 0),
           cv2.imwrite of every crop at PNG compression 3, for GT, LRbicx2 and LRbicx4
  ours     methbuild.sr.subimages.extract_subimages(workers=1) on the paired folder

It checks that both wrote the same file names with the same pixels, and prints the median times
and their ratio (target: ours ≥ 2× faster), and the bytes each wrote. Then `methbuild sr lmdb` on
the GT sub-images in a child process with batches of 8, 32 and 128 MB: its peak RSS against the
size of the set written (target: bounded by the batch, not the set; ≤ 1 GB).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_lowres import natural_jpeg  # noqa: E402

SIZES = [(4000, 3000), (3000, 4000), (4240, 2832)]  # 12 MP
CROP, STEP = 480, 240


def basicsr_loop(folder: Path, out: Path, crop: int, step: int, thresh: int = 0, level: int = 3) -> None:
    """BasicSR's worker, re-expressed: read each image whole with OpenCV, crop by its positions, imwrite."""
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(folder.glob("*.png")):
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        h, w = img.shape[:2]
        rows = np.arange(0, h - crop + 1, step)
        if h - (rows[-1] + crop) > thresh:
            rows = np.append(rows, h - crop)
        cols = np.arange(0, w - crop + 1, step)
        if w - (cols[-1] + crop) > thresh:
            cols = np.append(cols, w - crop)
        index = 0
        for y in rows:
            for x in cols:
                index += 1
                part = np.ascontiguousarray(img[y: y + crop, x: x + crop, ...])
                cv2.imwrite(str(out / f"{path.stem}_s{index:03d}.png"), part, [cv2.IMWRITE_PNG_COMPRESSION, level])


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return r.ru_utime + r.ru_stime


def run_basicsr(root: Path, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds."""
    shutil.rmtree(out, ignore_errors=True)
    t, c = time.perf_counter(), cpu_seconds()
    for name, s in (("GT", 1), ("LRbicx2", 2), ("LRbicx4", 4)):
        basicsr_loop(root / name, out / f"{name}_sub", CROP // s, STEP // s)
    return time.perf_counter() - t, cpu_seconds() - c


def run_ours(root: Path) -> tuple[float, float]:
    """(wall, CPU) seconds."""
    from methbuild.sr.subimages import extract_subimages

    for name in ("GT_sub", "LRbicx2_sub", "LRbicx4_sub"):
        shutil.rmtree(root / name, ignore_errors=True)
    t, c = time.perf_counter(), cpu_seconds()
    extract_subimages(root, crop=CROP, step=STEP, workers=1, progress=False)
    return time.perf_counter() - t, cpu_seconds() - c


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.png"))


def same_output(root: Path, base: Path) -> int:
    """Number of sub-images compared; raises if names or pixels differ."""
    import cv2

    n = 0
    for name in ("GT_sub", "LRbicx2_sub", "LRbicx4_sub"):
        ours = sorted(p.name for p in (root / name).glob("*.png"))
        theirs = sorted(p.name for p in (base / name).glob("*.png"))
        if ours != theirs:
            raise SystemExit(f"{name}: different file names ({len(ours)} vs {len(theirs)})")
        for fname in ours[:: max(1, len(ours) // 25)]:  # a sample of pixels
            a = cv2.imread(str(root / name / fname), cv2.IMREAD_UNCHANGED)
            b = cv2.imread(str(base / name / fname), cv2.IMREAD_UNCHANGED)
            if not np.array_equal(a, b):
                raise SystemExit(f"{name}/{fname}: different pixels")
        n += len(ours)
    return n


def lmdb_memory(folder: Path, out: Path, batch_mb: int) -> tuple[float, float, float]:
    """(peak RSS MB of a `methbuild sr lmdb` child, set MB written, seconds).

    The peak is the child's own VmHWM, polled from /proc until it exits: a forked child's ru_maxrss
    would include this (large) process's pages from before its exec."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "methbuild", "sr", "lmdb", str(folder), "--out", str(out),
                              "--batch-mb", str(batch_mb), "--workers", "1", "--quiet"], env=env,
                             stdout=subprocess.DEVNULL)
    peak = 0
    while child.poll() is None:
        try:
            for line in open(f"/proc/{child.pid}/status"):
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.02)
    if child.returncode:
        raise SystemExit(f"sr lmdb failed with status {child.returncode}")
    return peak / 1024, (out / "data.mdb").stat().st_size / 1e6, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 images × 2 repeats")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="folder to keep the generated set in (reused)")
    args = ap.parse_args()
    n_images = 2 if args.quick else 3
    repeats = args.repeats or (2 if args.quick else 3)
    import cv2

    cv2.setNumThreads(1)
    import pyvips

    pyvips.concurrency_set(1)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-sr-"))
    src, root = work / "src", work / "pairs"
    src.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(SIZES[:n_images]):
        if not (src / f"hr{i}.jpg").exists():
            natural_jpeg(src / f"hr{i}.jpg", w, h, seed=i)
    if not (root / "meta_info.txt").exists():
        from methbuild.sr.pairs import write_pairs

        write_pairs(sorted(src.glob("*.jpg")), root, (2, 4), workers=1, progress=False)
    mp = sum(w * h for w, h in SIZES[:n_images]) / 1e6
    print(f"{n_images} images, {mp:.1f} MP of GT (+ LRbicx2, LRbicx4), {repeats} repeats, one core each")
    base = work / "basicsr"
    t_base, t_ours, c_base, c_ours = [], [], [], []
    for r in range(repeats):
        wall, cpu = run_basicsr(root, base)
        t_base.append(wall)
        c_base.append(cpu)
        wall, cpu = run_ours(root)
        t_ours.append(wall)
        c_ours.append(cpu)
        print(f"  repeat {r + 1}: basicsr {t_base[-1]:.2f} s ({c_base[-1]:.2f} s CPU), "
              f"ours {t_ours[-1]:.2f} s ({c_ours[-1]:.2f} s CPU)")
    n = same_output(root, base)
    mb_ours = sum(folder_bytes(root / f) for f in ("GT_sub", "LRbicx2_sub", "LRbicx4_sub")) / 1e6
    mb_base = sum(folder_bytes(base / f) for f in ("GT_sub", "LRbicx2_sub", "LRbicx4_sub")) / 1e6
    mb, mo = statistics.median(t_base), statistics.median(t_ours)
    print(f"sub-images: {n} files, same names and pixels (sampled)")
    cb, co = statistics.median(c_base), statistics.median(c_ours)
    print(f"  basicsr loop (cv2, PNG 3): median {mb:.2f} s wall, {cb:.2f} s CPU, {mb_base:.0f} MB")
    print(f"  methbuild sr subimages:    median {mo:.2f} s wall, {co:.2f} s CPU, {mb_ours:.0f} MB")
    print(f"  speed-up: {mb / mo:.2f}x wall, {cb / co:.2f}x CPU (target >= 2x)")
    for batch in (8, 32, 128):
        shutil.rmtree(work / "GT_sub.lmdb", ignore_errors=True)
        peak, size, secs = lmdb_memory(root / "GT_sub", work / "GT_sub.lmdb", batch)
        print(f"lmdb --batch-mb {batch}: {size:.0f} MB set written in {secs:.1f} s; peak RSS {peak:.0f} MB")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
