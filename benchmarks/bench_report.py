"""Benchmark `methbuild report` on a 30,000-row MetH-like dataset: page size and build time.

The dataset is made in code: a MetH CSV of N rows (23 classes, the paper's split proportions,
sizes drawn to SPEC §1's Met originals: megapixels median 6.1, Q1 2.5, Q3 10.7; aspect median 0.98,
Q1 0.72, Q3 1.33), ``data/<ID>.jpg`` as hard links to eight small JPEGs (only the seeded thumbnails
are ever decoded), README.md and croissant.json written by methbuild's own card writers, and one
unique sha256 per row in the CSV. Then the real command runs in a fresh process, as a user types it:

    methbuild report DATASET --quiet

Targets (issue 16): ≤ 5 MB for the whole report folder, ≤ 60 s on 2 cores. The baseline, measured in
the same command: decoding every image of the dataset once with shrink-on-load (timed on a sample of
files of the same pixel size, extrapolated) — what a report that opened every image would cost.

    .venv/bin/python benchmarks/bench_report.py            # 30,000 rows
    .venv/bin/python benchmarks/bench_report.py --quick    # 5,000 rows
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLASSES = ["Gold", "Silver", "Woodcut", "Limestone", "Silk", "Hard-paste porcelain", "Soft-paste porcelain",
           "Porcelain", "Stone", "Bronze", "Glass", "Ivory", "Wood", "Etching", "Engraving", "Lithograph",
           "Terracotta", "Earthenware", "Marble", "Iron", "Steel", "Cotton", "Wool"]


def met_like_sizes(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    z = 0.6745  # the upper quartile of a standard normal
    mp = np.exp(rng.normal(np.log(6.1), np.log(10.7 / 2.5) / (2 * z), n))
    ar = np.exp(rng.normal(np.log(0.98), np.log(1.33 / 0.72) / (2 * z), n))
    mp = np.clip(mp, 0.25, 66.6) * 1e6
    ar = np.clip(ar, 0.11, 8.4)
    w = np.maximum(500, np.round(np.sqrt(mp * ar))).astype(np.int64)
    h = np.maximum(500, np.round(np.sqrt(mp / ar))).astype(np.int64)
    return w, h


def make_dataset(root: Path, n: int) -> Path:
    import recipes
    from PIL import Image

    from methbuild.build import dataset_table
    from methbuild.dataset_card import Provenance, write_card, write_croissant

    recipe = recipes.get("meth-medium")
    folder = root / recipe.title
    data = folder / "data"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sources = []
    for k in range(8):  # eight small originals, 1600x1200-ish, with some texture
        arr = rng.integers(0, 255, size=(12, 16, 3), dtype=np.uint8)
        p = root / f"src{k}.jpg"
        Image.fromarray(arr).resize((1600, 1200), Image.BICUBIC).save(p, quality=85)
        sources.append(p)
    w, h = met_like_sizes(n, rng)
    ids = np.arange(100_000, 100_000 + n)
    labels = np.array(CLASSES)[np.arange(n) % len(CLASSES)]
    u = rng.random(n)
    split = np.where(u < 10 / 12, "train", np.where(u < 11 / 12, "validation", "test"))
    for i, oid in enumerate(ids):
        os.link(sources[i % len(sources)], data / f"{oid}.jpg")
    sel = pd.DataFrame({"ID": ids, "Label": labels, "Split": split, "width": w, "height": h,
                        "image_file": [f"{i}.jpg" for i in ids],
                        "url": [f"https://images.example/{i}.jpg" for i in ids],
                        "sha256": [hashlib.sha256(str(i).encode()).hexdigest() for i in ids],
                        "Accession number": [f"19.{i}" for i in ids]})
    table = dataset_table(recipe, sel)
    table.to_csv(folder / f"{recipe.title}.csv", index=False)
    src = f"recipe {recipe.name} {recipe.version}"
    when = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    write_card(recipe, table, folder, scale=n / 27_600, source=src)
    write_croissant(recipe, table, folder, Provenance(source=src, api_url="https://collectionapi.metmuseum.org",
                                                       scale=n / 27_600, downloaded=(when, when)))
    return folder


def baseline_decode_all(folder: Path, n: int, sample: int = 40) -> float:
    """Seconds to decode every image once with shrink-on-load, from a timed sample (extrapolated)."""
    import pyvips

    files = sorted((folder / "data").iterdir())[:sample]
    t0 = time.perf_counter()
    for f in files:
        pyvips.Image.thumbnail(str(f), 160).avg()
    return (time.perf_counter() - t0) / len(files) * n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5,000 rows instead of 30,000")
    ap.add_argument("--rows", type=int, default=None)
    args = ap.parse_args()
    n = args.rows or (5_000 if args.quick else 30_000)
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        folder = make_dataset(root, n)
        print(f"dataset: {n:,} rows, made in {time.perf_counter() - t0:.1f} s ({folder})")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "methbuild", "report", str(folder), "--quiet"],
                              capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr)
            return 1
        print(proc.stdout.strip())
        out = folder / "report"
        files = [p for p in out.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        html = (out / "index.html").stat().st_size
        base = baseline_decode_all(folder, n)
        print(f"report: {len(files)} files, {size / 1e6:.2f} MB (index.html {html / 1e3:.0f} kB); target <= 5 MB: "
              f"{'met' if size <= 5e6 else 'NOT met'}")
        print(f"time: {seconds:.1f} s wall for the command; target <= 60 s: {'met' if seconds <= 60 else 'NOT met'}")
        print(f"baseline (decode every image once, shrink-on-load, extrapolated from a sample): {base:.1f} s; "
              f"report / baseline = {seconds / base:.2f}")
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
