"""Speed and memory of `methbuild lowres` on 12–16 MP JPEGs, against two baselines in the same run.

    .venv/bin/python benchmarks/bench_lowres.py            # 6 images × 3 repeats, 3–4 minutes
    .venv/bin/python benchmarks/bench_lowres.py --quick    # 2 images × 2 repeats, ~1 minute

Per image, in one process (each libvips pipeline on one thread, as in each worker of a pool):
  decode   pyvips decodes the JPEG and nothing else (streamed, and into memory: the faster counts)
  ours     methbuild.lowres.make_lowres: decode once, ×2 ×4 ×8 ×16 cubic reduce, four PNGs; it
           decodes in one thread while one thread per scale reduces and encodes the rows decoded
  pillow   a plain Pillow pipeline: open, exif_transpose, crop, resize(BICUBIC) per scale, save PNG
Both the wall time (what one image takes) and the CPU time of the process (what a pool with a
worker per core pays per image) are printed, each against the decode's.
Targets (issue #4): ours ≤ 1.5 × decode; ours ≥ 3 × faster than Pillow; peak RSS per worker
≤ 3 × one decoded image. Also: throughput of the whole set through build_lowres with
2 workers × 1 vips thread against 1 worker × 2 threads, and the PNG bytes written.
The machine is shared: medians, and ratios of runs interleaved in the same command.
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

SIZES = [(4608, 3456), (3456, 4608), (4000, 3000), (4240, 3200), (3000, 4000), (4896, 3264)]  # 12–16 MP
SCALES = (2, 4, 8, 16)


def natural_jpeg(path: Path, width: int, height: int, seed: int) -> None:
    """A photo-like image: smooth colour gradients, vignetting, hard-edged objects, texture, noise."""
    import pyvips

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x /= width
    y /= height
    img = np.empty((height, width, 3), np.float32)
    for c in range(3):
        a, b, ph = rng.uniform(-1, 1, 3)
        img[..., c] = 120 + 60 * np.sin(np.pi * (1.5 * a * x + 2 * b * y + ph)) * (1 - 0.5 * ((x - .5) ** 2 + (y - .5) ** 2))
    for _ in range(40):  # objects with sharp edges
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        w, h = rng.integers(width // 40, width // 4), rng.integers(height // 40, height // 4)
        img[y0: y0 + h, x0: x0 + w] += rng.uniform(-50, 50, 3)
    texture = rng.normal(0, 1, (height // 8 + 1, width // 8 + 1)).astype(np.float32)
    texture = np.kron(texture, np.ones((8, 8), np.float32))[:height, :width]  # coarse grain, like canvas
    img += 6 * texture[..., None]
    img += rng.normal(0, 3.5, (height, width, 1)).astype(np.float32)  # fine grain / sensor noise
    img += rng.normal(0, 1.5, (height, width, 3)).astype(np.float32)  # chroma noise
    out = np.clip(img, 0, 255).astype(np.uint8)
    # Q95 with full-resolution chroma, as museum masters are kept: ~0.5 bytes per pixel
    pyvips.Image.new_from_array(out).copy(interpretation="srgb").jpegsave(str(path), Q=95, subsample_mode="off")


# --------------------------------------------------------------------------- the three pipelines


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return r.ru_utime + r.ru_stime


def run_decode(path: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of the faster of two ways to only decode: streamed through, into memory."""
    import pyvips

    best = (float("inf"), float("inf"))
    for how in ("stream", "memory"):
        c, t = cpu_seconds(), time.perf_counter()
        image = pyvips.Image.new_from_file(str(path), access="sequential")
        image.avg() if how == "stream" else image.copy_memory()  # avg keeps nothing
        best = min(best, (time.perf_counter() - t, cpu_seconds() - c))
    return best


def run_ours(path: Path, out: Path) -> tuple[float, float]:
    from methbuild.lowres import LowresTask, make_lowres

    shutil.rmtree(out, ignore_errors=True)
    for s in SCALES:
        (out / f"X{s}").mkdir(parents=True)
    c, t = cpu_seconds(), time.perf_counter()
    make_lowres(LowresTask(str(path), path.stem, str(out), SCALES, 16, 1))
    return time.perf_counter() - t, cpu_seconds() - c


def run_pillow(path: Path, out: Path, level: int | None = None) -> float:
    from PIL import Image, ImageOps

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t = time.perf_counter()
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        w, h = im.width // 16 * 16, im.height // 16 * 16
        im = im.crop((0, 0, w, h))
        for s in SCALES:
            kw = {} if level is None else {"compress_level": level}
            im.resize((w // s, h // s), Image.BICUBIC).save(out / f"X{s}_{path.stem}.png", **kw)
    return time.perf_counter() - t


# --------------------------------------------------------------------------- memory, in a fresh process

RSS_CHILD = r"""
import resource, sys, json
sys.path.insert(0, sys.argv[1])
def rss():
    with open('/proc/self/status') as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith('VmRSS')) / 1024
mode, out, paths = sys.argv[2], sys.argv[3], sys.argv[4:]
if mode == 'ours':
    from methbuild.lowres import LowresTask, make_lowres, _configure_vips
    _configure_vips(1)
    import numpy, PIL.Image
else:
    from PIL import Image, ImageOps
base = rss()
for p in paths:
    stem = p.rsplit('/', 1)[-1].rsplit('.', 1)[0]
    if mode == 'ours':
        import os
        for s in (2, 4, 8, 16): os.makedirs(f'{out}/X{s}', exist_ok=True)
        make_lowres(LowresTask(p, stem, out, (2, 4, 8, 16), 16, 1))
    else:
        with Image.open(p) as im:
            im = ImageOps.exif_transpose(im).convert('RGB')
            w, h = im.width // 16 * 16, im.height // 16 * 16
            im = im.crop((0, 0, w, h))
            for s in (2, 4, 8, 16):
                im.resize((w // s, h // s), Image.BICUBIC).save(f'{out}/X{s}_{stem}.png')
with open('/proc/self/status') as fh:  # VmHWM: this process's peak (ru_maxrss survives exec)
    peak = next(int(l.split()[1]) for l in fh if l.startswith('VmHWM')) / 1024
print(json.dumps({'base_mb': base, 'peak_mb': peak}))
"""


def peak_rss(mode: str, paths: list[Path], out: Path) -> dict:
    import json

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = dict(os.environ, VIPS_CONCURRENCY="1")
    proc = subprocess.run([sys.executable, "-c", RSS_CHILD, str(REPO), mode, str(out), *map(str, paths)],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def set_throughput(paths: list[Path], out: Path, workers: int, threads: int) -> float:
    from methbuild.lowres import build_lowres

    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    report = build_lowres(paths, out, workers=workers, vips_threads=threads, progress=False)
    assert report.failed == 0, report.failures
    return time.perf_counter() - t


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 images × 2 repeats")
    ap.add_argument("--images", type=int, default=None, help="number of test JPEGs (default 6, quick 2)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per image (default 3, quick 2)")
    ap.add_argument("--keep", type=Path, default=None, help="folder to keep the generated JPEGs in (reused)")
    args = ap.parse_args()
    n = args.images or (2 if args.quick else 6)
    repeats = args.repeats or (2 if args.quick else 3)

    import pyvips

    from methbuild.lowres import _configure_vips

    _configure_vips(1)  # one vips thread: the per-worker setting build_lowres uses on a full pool
    work = Path(tempfile.mkdtemp(prefix="bench-lowres-"))
    src = args.keep or work / "src"
    src.mkdir(parents=True, exist_ok=True)
    paths = []
    t = time.perf_counter()
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        p = src / f"hr{i:02d}_{w}x{h}.jpg"
        if not p.exists():
            natural_jpeg(p, w, h, seed=i)
        paths.append(p)
    mp = {p: pyvips.Image.new_from_file(str(p)).width * pyvips.Image.new_from_file(str(p)).height / 1e6 for p in paths}
    print(f"{n} JPEGs, {min(mp.values()):.1f}–{max(mp.values()):.1f} MP, "
          f"{sum(p.stat().st_size for p in paths) / n / 1e6:.1f} MB each "
          f"({sum(p.stat().st_size for p in paths) / sum(mp.values()) / 1e6:.2f} bytes/pixel, made in {time.perf_counter() - t:.0f} s); "
          f"{repeats} repeats; libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}, 1 thread")

    rows = {k: [] for k in ("decode", "ours", "pillow", "pillow_l1")}
    cpu = {k: [] for k in ("decode", "ours")}
    for _ in range(repeats):
        for p in paths:  # interleaved, so load from other processes hits every pipeline alike
            for k, fn in (("decode", lambda: run_decode(p)), ("ours", lambda: run_ours(p, work / "ours"))):
                wall, used = fn()
                rows[k].append((p, wall))
                cpu[k].append((p, used))
            rows["pillow"].append((p, run_pillow(p, work / "pillow")))
            rows["pillow_l1"].append((p, run_pillow(p, work / "pillow", level=1)))
    med = {k: statistics.median(t for _, t in v) for k, v in rows.items()}
    mps = {k: statistics.median(mp[p] / t for p, t in v) for k, v in rows.items()}
    per_image = {k: {p: statistics.median(t for q, t in v if q == p) for p in paths} for k, v in rows.items()}
    ratio_decode = statistics.median(per_image["ours"][p] / per_image["decode"][p] for p in paths)
    cpu_image = {k: {p: statistics.median(t for q, t in v if q == p) for p in paths} for k, v in cpu.items()}
    ratio_cpu = statistics.median(cpu_image["ours"][p] / cpu_image["decode"][p] for p in paths)
    speedup = statistics.median(per_image["pillow"][p] / per_image["ours"][p] for p in paths)
    speedup_l1 = statistics.median(per_image["pillow_l1"][p] / per_image["ours"][p] for p in paths)

    run_ours(paths[0], work / "ours")
    ours_bytes = sum(f.stat().st_size for f in (work / "ours").rglob("*.png"))
    run_pillow(paths[0], work / "pillow")
    pil_bytes = sum(f.stat().st_size for f in (work / "pillow").glob("*.png"))

    print()
    print(f"{'pipeline':34s} {'median s/img':>12s} {'HR MP/s':>9s}")
    labels = {"decode": "pyvips decode only", "ours": "methbuild lowres (4 scales)",
              "pillow": "Pillow BICUBIC ×4 + PNG (default)", "pillow_l1": "Pillow BICUBIC ×4 + PNG level 1"}
    for k, label in labels.items():
        print(f"{label:34s} {med[k]:12.3f} {mps[k]:9.1f}")
    print()
    print(f"ours / decode          {ratio_decode:6.2f}×   wall time of one image (target ≤ 1.5×)")
    print(f"ours / decode, CPU     {ratio_cpu:6.2f}×   CPU seconds per image: what a worker per core pays "
          f"({statistics.median(cpu_image['ours'].values()):.3f} s vs {statistics.median(cpu_image['decode'].values()):.3f} s)")
    print(f"Pillow / ours          {speedup:6.2f}×   (target ≥ 3×; against Pillow at PNG level 1: {speedup_l1:.2f}×)")
    print(f"PNG bytes, image 0     ours {ours_bytes / 1e6:.1f} MB, Pillow default {pil_bytes / 1e6:.1f} MB")

    decoded_mb = max(mp[p] for p in paths) * 3
    for mode in ("ours", "pillow"):
        r = peak_rss(mode, paths, work / f"rss-{mode}")
        print(f"peak RSS {mode:7s}       {r['peak_mb']:.0f} MB (after imports {r['base_mb']:.0f} MB; "
              f"work {r['peak_mb'] - r['base_mb']:.0f} MB = {(r['peak_mb'] - r['base_mb']) / decoded_mb:.2f}× "
              f"one decoded image of {decoded_mb:.0f} MB; whole process {r['peak_mb'] / decoded_mb:.2f}×)")

    cpus = len(os.sched_getaffinity(0))
    if cpus >= 2:
        # enough images that the pool's start-up (forkserver, imports) is amortised as in a real run
        copies = max(1, -(-12 // n))
        many = []
        for k in range(copies):
            for p in paths:
                link = work / "many" / f"{p.stem}_{k}.jpg"
                link.parent.mkdir(exist_ok=True)
                if not link.exists():
                    link.symlink_to(p)
                many.append(link)
        total_mp = sum(mp[p] for p in paths) * copies
        configs = [(cpus, 1), (1, cpus)]
        times = {c: [] for c in configs}
        for _ in range(max(1, repeats - 1)):
            for c in configs:
                times[c].append(set_throughput(many, work / "set", *c))
        for (w, th), ts in times.items():
            t = statistics.median(ts)
            print(f"build_lowres {w} worker(s) × {th} vips thread(s): {t:.2f} s for {len(many)} images, "
                  f"{total_mp / t:.1f} HR MP/s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
