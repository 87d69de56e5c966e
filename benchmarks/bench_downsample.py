"""Benchmark `methbuild downsample` against a single-process exact Pillow loop, same files, same command.

    .venv/bin/python benchmarks/bench_downsample.py            # 2,000 train + 200 val images, 3 rounds
    .venv/bin/python benchmarks/bench_downsample.py --quick    # 400 + 40 images, 1 round

Source: typical 500×375 JPEGs (1/f texture, hard-edged shapes, sensor noise, quality 75–95)
generated once into benchmarks/out/downsample/src. For each size it times, alternating, (a) the
baseline: one process, ``Image.open → convert('RGB') → resize((S, S), BOX)`` per file, pixels
kept in memory, nothing written; (b) the full ``downsample`` build (scan, resize, work file,
10 batches + val written) with --workers 2, fast (default) and --exact. It prints medians,
the ratio against the baseline, a projection for the full 1,331,167 ImageNet images, and
the mean / max absolute error of the fast mode against --exact per method and size.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from methbuild.downsample import METHODS, Options, build  # noqa: E402
from methbuild.downsample.resize import DEFAULT_DRAFT, square  # noqa: E402

OUT = REPO / "benchmarks" / "out" / "downsample"
IMAGENET = 1_281_167 + 50_000
TARGET = 4.0


def photo(rng: np.random.Generator, w: int = 500, h: int = 375) -> np.ndarray:
    """1/f amplitude spectrum (as natural images), a few hard-edged shapes, mild sensor noise."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.hypot(fx, fy)
    f[0, 0] = 1
    base = None
    chans = []
    for _ in range(3):
        spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f
        spec[0, 0] = 0
        x = np.fft.irfft2(spec, s=(h, w))
        x /= x.std()
        base = x if base is None else base
        chans.append(0.7 * base + 0.3 * x)
    img = np.stack(chans, -1) * rng.uniform(25, 55) + rng.uniform(60, 180, 3)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(2, 9))):
        x0, y0 = int(rng.integers(-50, w)), int(rng.integers(-50, h))
        box = (x0, y0, x0 + int(rng.integers(30, 250)), y0 + int(rng.integers(30, 250)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 1.0))))
    a = np.asarray(im).astype(np.float32) + rng.normal(0, rng.uniform(1, 4), (h, w, 3)).astype(np.float32)
    return np.clip(a, 0, 255).astype(np.uint8)


def make_source(n_train: int, n_val: int, n_classes: int = 20) -> Path:
    src = OUT / f"src-{n_train}-{n_val}"
    done = src / ".complete"
    if done.exists():
        return src
    shutil.rmtree(src, ignore_errors=True)
    rng = np.random.default_rng(2017)
    wnids = [f"n{10000000 + 7919 * k:08d}" for k in range(n_classes)]
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            d = src / split / wnids[i % n_classes]
            d.mkdir(parents=True, exist_ok=True)
            name = f"{wnids[i % n_classes]}_{i}.JPEG" if split == "train" else f"ILSVRC2012_val_{i + 1:08d}.JPEG"
            Image.fromarray(photo(rng)).save(d / name, "JPEG", quality=int(rng.integers(75, 96)))
        print(f"  generated {n} {split} images", flush=True)
    done.write_text("ok")
    return src


def all_files(src: Path) -> list[Path]:
    return sorted(p for p in src.glob("*/*/*") if p.is_file())


def baseline(files: list[Path], size: int) -> tuple[float, float]:
    """The exact Pillow pipeline in one process: (images per second, CPU ms per image)."""
    t, c = time.perf_counter(), time.process_time()
    rows = []
    for p in files:
        with Image.open(p) as im:
            img = im.convert("RGB").resize((size, size), Image.Resampling.BOX)
        rows.append(np.asarray(img).transpose(2, 0, 1).reshape(-1))
    return len(files) / (time.perf_counter() - t), (time.process_time() - c) * 1e3 / len(files)


def ours(src: Path, size: int, exact: bool, workers: int, draft: int) -> tuple[float, float, float]:
    """The whole build: (images/s end to end, worker CPU ms per image, steady images/s)."""
    out = OUT / "build"
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    s = build(Options(src=src, out=out, size=size, exact=exact, workers=workers, draft=draft, progress=False))
    dt = time.perf_counter() - t
    n = s["splits"]["train"]["files"] + s["splits"]["val"]["files"]
    return n / dt, s["worker_cpu_seconds"] * 1e3 / n, s["steady_images_per_second"]


def errors(files: list[Path], sizes: list[int], drafts: list[int]) -> list[tuple]:
    rows = []
    for size in sizes:
        for method in METHODS:
            for draft in drafts:
                mean_err, max_err = [], 0
                for p in files:
                    e, _ = square(str(p), size, method, exact=True)
                    f, _ = square(str(p), size, method, exact=False, draft=draft)
                    d = np.abs(e.astype(np.int16) - f.astype(np.int16))
                    mean_err.append(d.mean())
                    max_err = max(max_err, int(d.max()))
                rows.append((size, method, draft, float(np.mean(mean_err)), float(np.percentile(mean_err, 99)), max_err))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="400 + 40 images, one round, fewer error samples")
    ap.add_argument("--rounds", type=int, default=None, help="timing rounds (default 3, quick 1)")
    ap.add_argument("--workers", type=int, default=2, help="workers of our build (default 2)")
    ap.add_argument("--sizes", default="16,32,64", help="sizes to time (default 16,32,64)")
    args = ap.parse_args()
    n_train, n_val = (400, 40) if args.quick else (2000, 200)
    rounds = args.rounds or (1 if args.quick else 3)
    sizes = [int(s) for s in args.sizes.split(",")]
    cv2.setNumThreads(1)

    print(f"source: {n_train} train + {n_val} val JPEGs 500×375 in {OUT}")
    src = make_source(n_train, n_val)
    files = all_files(src)
    kb = np.mean([p.stat().st_size for p in files]) / 1024
    print(f"  mean file size {kb:.0f} KB")
    print(f"load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs "
          "(other work on the machine slows the parallel runs more than the one-process baseline)")
    print(f"{'size':>5} {'baseline':>9} {'fast':>7} {'ratio':>6} {'exact':>7} {'ratio':>6} {'fast steady':>12} {'ratio':>6}"
          f"   CPU ms/img base/fast/exact (per-core ratio)   1.28M projection fast steady / baseline")
    for size in sizes:
        base, fast, exact, cb, cf, ce, steady = [], [], [], [], [], [], []
        for _ in range(rounds):  # alternate, so a burst of load from elsewhere hits all three alike
            ips, cpu = baseline(files, size)
            base.append(ips)
            cb.append(cpu)
            ips, cpu, st = ours(src, size, False, args.workers, DEFAULT_DRAFT)
            fast.append(ips)
            cf.append(cpu)
            steady.append(st)
            ips, cpu, _ = ours(src, size, True, args.workers, DEFAULT_DRAFT)
            exact.append(ips)
            ce.append(cpu)
        b, f, e, fs = (statistics.median(v) for v in (base, fast, exact, steady))
        mb, mf, me = (statistics.median(v) for v in (cb, cf, ce))
        flag = (("meets" if fs / b >= TARGET else "BELOW") + f" target {TARGET:.0f}× (steady)") if size == 32 else ""
        print(f"{size:>5} {b:>9.0f} {f:>7.0f} {f / b:>5.2f}× {e:>7.0f} {e / b:>5.2f}× {fs:>12.0f} {fs / b:>5.2f}×   "
              f"{mb:.2f}/{mf:.2f}/{me:.2f} ({mb / mf:.2f}×){'':>13}"
              f"{IMAGENET / fs / 3600:.2f} h / {IMAGENET / b / 3600:.2f} h  {flag}", flush=True)
    print(f"(images/s, median of {rounds}; baseline = 1 process exact Pillow, nothing written; fast/exact = the whole "
          f"build with --workers {args.workers}: scan, pool start, resize, work file, 11 batches written; "
          "steady = resize pass after the first chunk, i.e. without the ~0.5 s pool start)")
    shutil.rmtree(OUT / "build", ignore_errors=True)

    sample = files[:: max(1, len(files) // (20 if args.quick else 60))]
    drafts = sorted({1, DEFAULT_DRAFT, 4})
    print(f"\nfast vs --exact, absolute error in grey levels over {len(sample)} images "
          f"(mean of per-image means / 99th percentile of per-image means / max over all pixels)")
    print(f"{'size':>5} {'method':>9} " + " ".join(f"{'draft ' + str(d):>20}" for d in drafts))
    rows = errors(sample, sizes, drafts)
    for size in sizes:
        for method in METHODS:
            cells = [r for r in rows if r[0] == size and r[1] == method]
            print(f"{size:>5} {method:>9} " + " ".join(f"{m:>8.2f} {p:>5.2f} {x:>5d}" for _, _, _, m, p, x in cells))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\npeak RSS: parent {peak:.0f} MB, largest worker {kids:.0f} MB")


if __name__ == "__main__":
    main()
