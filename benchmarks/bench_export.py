"""Benchmark `methbuild export`: MB/s of WebDataset and Parquet export against `tar cf` of the same files.

A MetH-like dataset of large originals (noise JPEGs of 5–30 MB, made once with pyvips into
/tmp/methbuild-bench-export/, reused by later runs) is exported in one command:

1. ``tar cf`` of its ``data/`` folder (the baseline: one sequential copy into one archive);
2. ``methbuild export --to webdataset`` and ``--to parquet`` (fresh output folder each time).

Every run reads warm files (a read pass before each), runs in its own process under ``/usr/bin/time``
for its peak RSS, and the rounds alternate; the best of the rounds is reported. Our exports fsync
each shard (a shard only counts as done once it is on disk), so ``tar cf`` is also timed with an
fsync of its archive, for the like-for-like figure.

Targets (issue 14): webdataset ≥ 80% of ``tar cf``, parquet ≥ 50%, peak RSS ≤ 2 × --shard-bytes + 200 MB.

    .venv/bin/python benchmarks/bench_export.py                 # 80 images (~1.3 GB), 2 rounds
    .venv/bin/python benchmarks/bench_export.py --n 100 --rounds 3 --shard-bytes 512MB
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CACHE = Path("/tmp/methbuild-bench-export")
NAME = "MetH-Bench"


def _noise_jpeg(path: Path, w: int, h: int, seed: int) -> None:
    import pyvips

    bands = [pyvips.Image.gaussnoise(w, h, sigma=40, mean=128, seed=seed * 3 + b).cast("uchar") for b in range(3)]
    bands[0].bandjoin(bands[1:]).copy(interpretation="srgb").jpegsave(str(path), Q=95)


def ensure_dataset(n: int) -> Path:
    """``CACHE/n<N>/MetH-Bench/`` with N JPEGs of 5–30 MB and a MetH CSV.

    The images are made once into ``CACHE/images/`` (image i is a function of i alone, so a bigger N
    reuses the smaller run's files) and hard-linked into each dataset folder.
    """
    folder = CACHE / f"n{n}" / NAME
    done = folder / ".complete"
    if done.exists():
        return folder
    images = CACHE / "images"
    images.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    for i in range(n):
        oid = 100000 + i
        rng = np.random.default_rng(oid)
        mp = rng.uniform(2.5, 14.0)  # noise at Q95: ~2.1 bytes per pixel → 5–30 MB
        aspect = rng.uniform(0.5, 2.0)
        w, h = int((mp * 1e6 * aspect) ** 0.5), int((mp * 1e6 / aspect) ** 0.5)
        cached = images / f"{oid}.jpg"
        if not cached.exists():
            _noise_jpeg(cached.with_suffix(".tmp.jpg"), w, h, oid)
            cached.with_suffix(".tmp.jpg").rename(cached)
        path = folder / "data" / f"{oid}.jpg"
        if not path.exists():
            os.link(cached, path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        split = "train" if i % 10 < 8 else ("validation" if i % 10 == 8 else "test")
        rows.append([oid, ["Gold", "Silver", "Silk", "Wood"][i % 4], f"{oid}.jpg", w, h, w * h,
                     round(w / h, 6), split, f"bench.{i}", "", digest])
        print(f"\rimages {i + 1}/{n} ({time.perf_counter() - t0:.0f} s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    with open(folder / f"{NAME}.csv", "w", newline="") as fh:
        wr = csv.writer(fh, lineterminator="\n")
        wr.writerow(["ID", "Label", "Image file", "Width", "Height", "Product size", "Aspect ratio", "Split",
                     "Accession number", "URL", "sha256"])
        wr.writerows(rows)
    done.write_text("ok\n")
    return folder


def _warm(folder: Path) -> None:
    for p in sorted((folder / "data").iterdir()):
        with open(p, "rb") as fh:
            while fh.read(16 << 20):
                pass


def _timed(cmd: list[str], env: dict | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes, the largest process of the run) of ``cmd``."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *cmd], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    m = re.findall(r"MAXRSS (\d+)", proc.stderr)
    return seconds, int(m[-1]) * 1024 if m else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=80, help="images (5–30 MB each) [80, ~1.3 GB]")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best is reported [2]")
    ap.add_argument("--shard-bytes", default="256MB", help="--shard-bytes of the exports [256MB]")
    ap.add_argument("--workers", type=int, default=None, help="--workers of the exports [CPU count]")
    ap.add_argument("--out", type=Path, default=CACHE / "out", help="scratch output folder (emptied)")
    args = ap.parse_args()

    src = ensure_dataset(args.n)
    total = sum(p.stat().st_size for p in (src / "data").iterdir())
    sizes = sorted(p.stat().st_size / 1e6 for p in (src / "data").iterdir())
    print(f"source: {args.n} JPEGs, {total / 1e6:.0f} MB, {sizes[0]:.1f}–{sizes[-1]:.1f} MB each ({src})")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    py = sys.executable
    shard_bytes = args.shard_bytes
    from methbuild.cli.export import ByteSize

    shard_b = ByteSize().convert(shard_bytes, None, None)
    extra = ["--workers", str(args.workers)] if args.workers else []
    runs = {
        "tar cf": lambda o: ["tar", "cf", str(o / "all.tar"), "-C", str(src / "data"), "."],
        "tar cf + fsync": lambda o: ["sh", "-c", f"tar cf {o}/all.tar -C {src / 'data'} . && sync -f {o}/all.tar"],
        "webdataset": lambda o: [py, "-m", "methbuild", "export", str(src), "--to", "webdataset", "--out", str(o),
                                 "--shard-bytes", shard_bytes, *extra],
        "parquet": lambda o: [py, "-m", "methbuild", "export", str(src), "--to", "parquet", "--out", str(o),
                              "--shard-bytes", shard_bytes, *extra],
    }
    best: dict[str, tuple[float, int]] = {}
    for r in range(args.rounds):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for name in order:
            out = args.out / name.replace(" ", "_").replace("+", "")
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            _warm(src)
            subprocess.run(["sync"], check=False)
            secs, rss = _timed(runs[name](out), env)
            print(f"  round {r + 1}: {name:<15} {secs:6.2f} s  {total / secs / 1e6:7.0f} MB/s  "
                  f"peak RSS {rss / 1e6:6.0f} MB")
            if name not in best or secs < best[name][0]:
                best[name] = (secs, max(rss, best.get(name, (0, 0))[1]))
            shutil.rmtree(out, ignore_errors=True)
    tar = total / best["tar cf"][0]
    tar_sync = total / best["tar cf + fsync"][0]
    print(f"\nbest of {args.rounds} ({total / 1e6:.0f} MB, --shard-bytes {shard_bytes}, "
          f"RSS limit 2×shard-bytes+200MB = {(2 * shard_b + 200e6) / 1e6:.0f} MB):")
    for name in ("webdataset", "parquet"):
        secs, rss = best[name]
        rate = total / secs
        target = 0.8 if name == "webdataset" else 0.5
        print(f"  {name:<11} {rate / 1e6:6.0f} MB/s = {rate / tar:5.2f}× tar cf ({tar / 1e6:.0f} MB/s), "
              f"{rate / tar_sync:5.2f}× tar cf + fsync ({tar_sync / 1e6:.0f} MB/s) [target ≥ {target:.2f}× tar cf]; "
              f"peak RSS {rss / 1e6:.0f} MB ({'within' if rss <= 2 * shard_b + 200e6 else 'ABOVE'} the limit)")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
