"""Megapixel MNIST: cost follows the content, not the canvas.

Prints, all measured in this one command (one core, median over the images):
  * render: the plan (labels, digits, positions, noise) and the patches of both resolutions,
    per image at 1500² and at 10,000², and their ratio (target: ≤ 10 ms at 1500², ratio ≤ 2);
  * encode: our sparse PNG writer (full + low resolution) on the same images, measured apart;
  * the floor it is compared with: OpenCV's PNG encoder (compression 1) on the same image, dense;
  * the original's way: allocate the canvas, paste, then scan it for non-zero pixels (its
    ``sparsify``), at both sizes (SPEC §10: ≈ 7 ms and 610 ms, 91×);
  * peak RSS of a one-worker `methbuild megapixel-mnist` run at 1500².

    python benchmarks/bench_megapixel.py [--images 20] [--big 10000]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench_ultramnist import _HWM_WRAPPER  # run as a script: benchmarks/ is on sys.path

from methbuild.synth import megapixel as mp
from methbuild.synth import sparse_png
from methbuild.synth.mnist import load_pool

SMALL = 1500


def _median_ms(times: list[float]) -> float:
    return 1000 * statistics.median(times)


def measure(side: int, n: int) -> dict:
    cv2.setNumThreads(1)
    cfg = mp.Config(dataclasses.replace(mp.PAPER, width=side, height=side))
    pool = load_pool(None, "train")
    bank = mp.noise_bank(0, "train", cfg)  # built once per split and worker, like the generator
    mp.render(mp.plan_image(0, "train", 0, cfg, pool), pool, bank, cfg)  # warm caches
    render, encode, dense_png, original = [], [], [], []
    sizes = []
    for i in range(n):
        t0 = time.perf_counter()
        plan = mp.plan_image(0, "train", i, cfg, pool)
        high, low = mp.render(plan, pool, bank, cfg)
        t1 = time.perf_counter()
        data = sparse_png.encode(side, side, high)
        sparse_png.encode(*cfg.low_shape, low)
        t2 = time.perf_counter()
        render.append(t1 - t0)
        encode.append(t2 - t1)
        sizes.append(len(data))
        if i < max(3, n // 4):  # the dense baselines are slow at 10,000²: fewer repeats
            t0 = time.perf_counter()
            canvas = np.zeros((side, side, 1), np.uint8)  # the original: a dense canvas per image ...
            for y, x, block in high:
                canvas[y: y + 28, x: x + 28, 0] = block
            flat = canvas.ravel()
            idx = np.where(flat != 0)  # ... scanned whole by its sparsify step
            _ = flat[idx]
            t1 = time.perf_counter()
            ok, buf = cv2.imencode(".png", canvas[:, :, 0], [cv2.IMWRITE_PNG_COMPRESSION, 1])
            t2 = time.perf_counter()
            original.append(t1 - t0)
            dense_png.append(t2 - t1)
            assert ok
    return {"render": _median_ms(render), "encode": _median_ms(encode), "dense_png": _median_ms(dense_png),
            "original": _median_ms(original), "bytes": statistics.median(sizes)}


def cli_run(n: int, out: Path) -> tuple[float, float]:
    """(seconds per image, peak RSS MiB) of a one-worker CLI run at 1500², start-up included."""
    cmd = [sys.executable, "-c", _HWM_WRAPPER, "megapixel-mnist", "--n-train", str(n), "--split", "train",
           "--workers", "1", "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("VMHWM_KB=")][-1]
    return elapsed / n, int(line.split("=")[1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20, help="images per size")
    ap.add_argument("--big", type=int, default=10_000, help="the large canvas side")
    args = ap.parse_args()
    small = measure(SMALL, args.images)
    big = measure(args.big, args.images)
    with tempfile.TemporaryDirectory() as tmp:
        per_image, rss = cli_run(args.images * 5, Path(tmp) / "run")
    print(f"Megapixel MNIST, one core, {args.images} images per size (median ms per image)")
    print(f"{'':34s}{SMALL:>10d}²{args.big:>10d}²{'ratio':>9s}")
    for key, label in (("render", "render (plan + patches, both views)"), ("encode", "encode, sparse PNG (both views)"),
                       ("dense_png", "OpenCV PNG encode of the same image"),
                       ("original", "original: dense canvas + sparsify")):
        print(f"  {label:36s}{small[key]:8.2f}  {big[key]:9.2f}  {big[key] / small[key]:7.1f}x")
    print(f"  {'PNG bytes (full resolution)':36s}{small['bytes']:8.0f}  {big['bytes']:9.0f}")
    print(f"  render + encode vs OpenCV encode alone: {(small['render'] + small['encode']) / small['dense_png']:.2f}x "
          f"at {SMALL}², {(big['render'] + big['encode']) / big['dense_png']:.3f}x at {args.big}²")
    print(f"  targets: render <= 10 ms at {SMALL}² ({'met' if small['render'] <= 10 else 'MISSED'}), "
          f"{args.big}² / {SMALL}² render <= 2 ({'met' if big['render'] <= 2 * small['render'] else 'MISSED'})")
    print(f"  CLI, one worker, {args.images * 5} images at {SMALL}²: {per_image:.4f} s/image with start-up, "
          f"peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
