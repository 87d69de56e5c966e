"""UltraMNIST speed and memory: seconds per 4000² image per core, peak RSS per worker.

Prints, all measured in this one command:
  * ours: median seconds per image (one core, render + JPEG q75 encode + atomic write);
  * the floor: Pillow encoding the same 4000² image as JPEG q75 (ratio ours / floor, ~1 is ideal);
  * a reference-style pipeline (the published generator's steps: digits by np.kron, shapes drawn with
    PIL and thresholded, a random board resized to 4000² and warped with a bicubic affine, centre-cropped
    and resized back, XOR-ed via sign/subtract), and the ratio of its time to ours;
  * the SPEC's measured reference figure (0.70 s per image per core) and the ratio against it;
  * peak RSS of a one-worker `methbuild ultramnist` process (target ≤ 300 MB).

    python benchmarks/bench_ultramnist.py [--images 24] [--quick]

Beyond memory (``--size`` above 16,000, or any size with ``--format tiff|tiff-deflate|dz``):

    python benchmarks/bench_ultramnist.py --size 50000 [--images 1] [--format tiff]

prints seconds per image and peak RSS of a one-worker `methbuild ultramnist --format tiff` run
(band-by-band rendering streamed into libvips), and the ratio to libvips writing a blank pyramid of
the same size and options in the same run (the floor: tiling, JPEG and pyramid with nothing to draw).
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from methbuild.synth import ultramnist as um
from methbuild.synth.mnist import load_pool

SPEC_REFERENCE_S = 0.70
SIZE = 4000


def time_ours(n: int, out: Path) -> tuple[list[float], np.ndarray]:
    cv2.setNumThreads(1)
    classes = um.class_assignment(n, 0, "train")
    ids = um.image_ids(n, 0, "train")
    times = []
    canvas = None
    for i in range(n):
        task = um.ImageTask("train", i, ids[i], int(classes[i]), str(out / f"{ids[i]}.jpeg"), SIZE, 0, "jpeg", 75,
                            "checker", None)
        t0 = time.perf_counter()
        um.make_image(task)
        times.append(time.perf_counter() - t0)
    pool = load_pool(None, "train")
    digits = um.plan_digits(0, "train", 0, int(classes[0]), SIZE, pool.indices_by_label(), pool.source_index)
    bg, rng = um.plan_background(0, "train", 0, SIZE, "checker")
    canvas = um.render(digits, pool.images, bg, SIZE, rng)
    return times, canvas


def time_pillow_encode(canvas: np.ndarray, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        buf = io.BytesIO()
        Image.fromarray(canvas).save(buf, "JPEG", quality=75)
        times.append(time.perf_counter() - t0)
    return times


def reference_style_image(rng: np.random.Generator, pool) -> np.ndarray:
    """The published generator's steps, re-expressed without torchvision (for a same-machine baseline)."""
    img = np.zeros((SIZE, SIZE))
    boxes = []
    k = int(rng.integers(3, 6))
    while len(boxes) < k:
        r = int(rng.choice(um.R_VALUES, p=um.V_PROBS))
        digit = pool.images[int(rng.integers(len(pool.images)))] / 255.0
        sub = np.kron(digit, np.ones((r, r)))
        s = sub.shape[0]
        x, y = (int(v) for v in rng.integers(0, SIZE - s + 1, size=2))
        if um._disjoint(x, y, s, boxes):
            img[x:x + s, y:y + s] += sub
            boxes.append((x, y, s))
    img[img > 1] = 1
    digits_u8 = (img * 255).astype(np.uint8)
    cells = int(rng.integers(12, 24))
    board = (rng.integers(0, 2, size=(cells, cells)) * 255).astype(np.uint8)
    board = cv2.resize(board, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
    pil = Image.fromarray(board)
    a, sh, sc = np.radians(rng.uniform(-45, 45)), np.radians(rng.uniform(-50, 50)), rng.uniform(0.8, 1.2)
    m = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.array([[1, np.tan(sh)], [0, 1]]) * sc
    inv = np.linalg.inv(m)
    c = SIZE / 2
    off = np.array([c, c]) - inv @ np.array([c, c])
    pil = pil.transform((SIZE, SIZE), Image.Transform.AFFINE, (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1]),
                        resample=Image.Resampling.BICUBIC)
    pil = pil.crop((1000, 1000, 3000, 3000)).resize((SIZE, SIZE))
    shapes = Image.fromarray(np.zeros((SIZE, SIZE), np.uint8))
    draw = ImageDraw.Draw(shapes)
    for _ in range(int(rng.integers(0, 5))):
        x, y, rad = int(rng.integers(0, SIZE)), int(rng.integers(0, SIZE)), int(rng.integers(50, 1000))
        draw.ellipse([(x - rad, y - rad), (x + rad, y + rad)], fill=255, outline=255)
    for _ in range(int(rng.integers(0, 5))):
        draw.polygon([tuple(int(v) for v in rng.integers(0, SIZE, 2)) for _ in range(3)], fill=255, outline=255)
    bgr = np.array(pil)
    _, bgr = cv2.threshold(bgr, 127, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    _, sh_img = cv2.threshold(np.array(shapes), 127, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    bgr = (np.sign(bgr.astype(np.int16) - sh_img) * 255).astype(np.uint8)
    _, dg = cv2.threshold(digits_u8, 127, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return (np.sign(bgr.astype(np.int16) - dg) * 255).astype(np.uint8)


def time_reference_style(n: int) -> list[float]:
    cv2.setNumThreads(1)
    pool = load_pool(None, "train")
    rng = np.random.default_rng(0)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        out = reference_style_image(rng, pool)
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, "JPEG", quality=75)
        times.append(time.perf_counter() - t0)
    return times


_HWM_WRAPPER = """
import runpy, sys
sys.argv = ["methbuild"] + sys.argv[1:]
try:
    runpy.run_module("methbuild", run_name="__main__")
finally:
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
    sys.stderr.write("VMHWM_KB=" + hwm + "\\n")
"""


def peak_rss_one_worker(n: int, out: Path) -> float:
    """Peak RSS (VmHWM: this process image only, not what fork inherited) of a one-worker CLI run."""
    cmd = [sys.executable, "-c", _HWM_WRAPPER, "ultramnist", "--n", str(n), "--size", str(SIZE), "--split", "train",
           "--workers", "1", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("VMHWM_KB=")][-1]
    return int(line.split("=")[1]) / 1024


def big_run(size: int, n: int, fmt: str, out: Path) -> tuple[float, float]:
    """(seconds per image, peak RSS MiB) of a one-worker tiled run (the worker is the main process)."""
    import json

    cmd = [sys.executable, "-c", _HWM_WRAPPER, "ultramnist", "--n", str(n), "--size", str(size), "--split", "train",
           "--workers", "1", "--format", fmt, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("VMHWM_KB=")][-1]
    seconds = json.loads((out / "summary.json").read_text())["seconds"]
    return seconds / n, int(line.split("=")[1]) / 1024


def blank_pyramid(size: int, fmt: str, out: Path) -> float:
    """Seconds for libvips to write a black image of the same size with the same tiling options."""
    import pyvips

    black = pyvips.Image.black(size, size).cast("uchar")
    t0 = time.perf_counter()
    if fmt == "dz":
        black.dzsave(str(out / "blank"), tile_size=um.TILE, overlap=0, suffix=".jpeg[Q=75]")
    else:
        black.tiffsave(str(out / "blank.tif"), tile=True, tile_width=um.TILE, tile_height=um.TILE, pyramid=True,
                       compression="jpeg" if fmt == "tiff" else "deflate", Q=75, predictor="none",
                       bigtiff=size * size > 2**31)
    return time.perf_counter() - t0


def big_main(size: int, n: int, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        per_image, rss = big_run(size, n, fmt, tmp / "ours")
        blank = blank_pyramid(size, fmt, tmp)
    print(f"UltraMNIST {size}x{size}, --format {fmt}, one worker, {n} image(s)")
    print(f"  ours:                           {per_image:.2f} s/image, peak RSS {rss:.0f} MiB (target <= 1536 MiB)")
    print(f"  libvips blank pyramid (floor):  {blank:.2f} s             ours / floor = {per_image / blank:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=None, help="images per measurement [24; 1 with --size]")
    ap.add_argument("--quick", action="store_true", help="6 images per measurement")
    ap.add_argument("--size", type=int, default=None, help="measure the tiled path at this side instead")
    ap.add_argument("--format", default="tiff", choices=["tiff", "tiff-deflate", "dz"], help="tiled format (--size)")
    args = ap.parse_args()
    if args.size:
        big_main(args.size, args.images or 1, args.format)
        return
    args.images = args.images or 24
    n = 6 if args.quick else args.images
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "ours").mkdir()
        load_pool(None, "train")  # warm the pool cache (a worker loads it once per run)
        ours, canvas = time_ours(n, tmp / "ours")
        enc = time_pillow_encode(canvas, n)
        ref = time_reference_style(max(3, n // 4))
        rss = peak_rss_one_worker(n, tmp / "rss")
    med, med_enc, med_ref = statistics.median(ours), statistics.median(enc), statistics.median(ref)
    print(f"UltraMNIST {SIZE}x{SIZE}, JPEG q75, one core, {n} images (cv2 threads = 1)")
    print(f"  ours:                       {med:.4f} s/image (median; min {min(ours):.4f}, max {max(ours):.4f})")
    print(f"  Pillow JPEG encode (floor): {med_enc:.4f} s/image   ours / floor = {med / med_enc:.2f}x")
    print(f"  reference-style pipeline:   {med_ref:.4f} s/image   reference-style / ours = {med_ref / med:.1f}x")
    print(f"  SPEC reference (0.70 s):    throughput ratio = {SPEC_REFERENCE_S / med:.1f}x (target >= 8x, <= 0.09 s)")
    print(f"  peak RSS, one-worker run:   {rss:.0f} MiB (target <= 300 MB)")


if __name__ == "__main__":
    main()
