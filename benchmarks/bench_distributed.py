"""Scaling on Dask: the same job on a LocalCluster of 1 and of 2 worker processes.

For `ultramnist` (4000² images) and `lowres` (12 MP JPEGs, ×2/×4/×8/×16), prints the wall time of
the job on `local:1` and on `local:2` (cluster start-up excluded), the speed-up (ideal: 2.0 on
2 cores), and the local process pool's time for reference.

    python benchmarks/bench_distributed.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from methbuild.executor import use_scheduler
from methbuild.lowres import build_lowres
from methbuild.synth.ultramnist import Options, generate


def make_jpegs(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        small = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((4000, 3008), Image.Resampling.BICUBIC)
        p = folder / f"{i}.jpg"
        img.save(p, quality=90)
        out.append(p)
    return out


def timed(fn, scheduler: str | None) -> float:
    with use_scheduler(scheduler):
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n_um, n_lr = (24, 6) if args.quick else (80, 16)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        srcs = make_jpegs(tmp / "src", n_lr)
        rows = []
        for job, make in (
            ("ultramnist", lambda tag: (lambda: generate(Options(n=n_um, size=4000, splits=("train",), out=tmp / f"um-{tag}",
                                                                  progress=False)))),
            ("lowres", lambda tag: (lambda: build_lowres(srcs, tmp / f"lr-{tag}", progress=False))),
        ):
            t1 = timed(make("d1"), "local:1")
            t2 = timed(make("d2"), "local:2")
            tp = timed(make("pool"), None)
            rows.append((job, t1, t2, tp))
    print(f"Dask LocalCluster scaling ({n_um} UltraMNIST 4000² images; {n_lr} lowres 12 MP JPEGs)")
    print(f"{'job':12} {'local:1':>9} {'local:2':>9} {'speed-up':>9} {'pool(2)':>9}")
    for job, t1, t2, tp in rows:
        print(f"{job:12} {t1:8.2f}s {t2:8.2f}s {t1 / t2:8.2f}x {tp:8.2f}s")


if __name__ == "__main__":
    main()
