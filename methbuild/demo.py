"""The offline demo: every main job of methbuild on embedded data, in a few minutes.

1. UltraMNIST: a small set with a contact sheet;
2. a local Met mirror serving the 2,000 real Met rows embedded in the package, and a crawl
   of a few dozen of them;
3. a second mirror serving synthetic Met-like records, and the four MetH datasets built from
   it, scaled down (MetH-SR with its bicubic LR test copies);
4. size and aspect-ratio statistics of the four datasets, with the MetH-style figure;
5. a report page (`methbuild report`) for every dataset built, and ``index.html`` linking them.

Nothing here reaches the internet: both mirrors listen on 127.0.0.1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).parent / "data"
REAL_ROWS = DATA / "MetObjects_sample2000.csv"

# Scales per dataset: a few images per class, and a couple of dozen SR originals above 12 MP.
DEMO_SCALES = {"meth-medium": 0.005, "meth-cultures": 0.006, "meth-period": 0.003, "meth-sr": 0.001}


@dataclass
class DemoResult:
    lines: list[str] = field(default_factory=list)
    index: Path | None = None  # the page linking every report (printed last)


def run_demo(out: Path, *, progress: bool = True, quick: bool = False, log=print) -> DemoResult:
    import recipes
    from methbuild.build import BuildOptions, build_recipe
    from methbuild.io.atomic import ensure_writable_dir
    from methbuild.met.crawl import crawl
    from methbuild.met.download import download_met_csv
    from methbuild.met.mirror import serve_in_thread
    from methbuild.synth.ultramnist import Options, generate

    out = ensure_writable_dir(out, "demo folder")
    res = DemoResult()
    t0 = time.perf_counter()

    log("[1/6] UltraMNIST (56 train + 56 test images, 1024x1024, with a contact sheet)")
    um = generate(Options(n=28 if quick else 56, size=1024, out=out / "ultramnist", preview=True, progress=progress))
    res.lines.append(f"UltraMNIST sample:     {out / 'ultramnist'}/  (look at preview.png; "
                     f"{sum(s['images'] for s in um['splits'].values())} images)")

    log("[2/6] crawl 40 real Met objects from a local mirror of the embedded real rows")
    with serve_in_thread(metadata=REAL_ROWS, seed=0, image_scale=0.25) as url:
        import pandas as pd

        ids = pd.read_csv(REAL_ROWS, usecols=["Object ID"], encoding="utf-8-sig")["Object ID"].head(40).tolist()
        report = crawl(ids, out / "crawl", api_url=url, api_rate=40, progress=progress)
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(report.counts.items()) if v)
    res.lines.append(f"Crawl of real rows:    {out / 'crawl'}/  ({counts}; objects.csv, images/)")

    log("[3/6] build MetH-Medium, -Cultures, -Period and -SR (scaled down) from a synthetic Met mirror")
    met = out / "met"
    # Full-size originals (the Met's spread: median 6 MP, 11% above 12 MP), so MetH-SR finds real candidates.
    with serve_in_thread(synthetic=4000, seed=0, image_scale=1.0, noise=4.0, quality=85) as url:
        download_met_csv(url.root + "/MetObjects.csv", met / "MetObjects.csv", progress=False)
        for name, scale in DEMO_SCALES.items():
            if quick and name == "meth-sr":
                continue
            opts = BuildOptions(out=out / "datasets", met=met, api_url=url, scale=scale, progress=progress,
                                crawl_args={"api_rate": 60, "concurrency": 16})
            r = build_recipe(recipes.get(name), opts)
            splits = ", ".join(f"{s} {r.counts.get(s, 0)}" for s in ("train", "validation", "test") if r.counts.get(s))
            extra = f", lowres x2-x16 of {r.lowres.total} test images" if r.lowres is not None else ""
            log(f"      {r.name}: {splits}{extra}")
            res.lines.append(f"{r.name + ':':22} {r.folder}/  ({splits}{extra})")

    log("[4/6] statistics of the built datasets (sizes, aspect ratios, overlaps, figure)")
    from methbuild.stats.collect import collect

    csvs = sorted((out / "datasets").glob("MetH-*/MetH-*.csv"))
    collect(csvs, groups=["meth"] * len(csvs), out=out / "stats", progress=progress)
    res.lines.append(f"Statistics:            {out / 'stats'}/  (figure.png, summary.csv, overlap.csv)")

    log("[5/6] export MetH-Medium to WebDataset shards (original bytes, index.parquet beside them)")
    from methbuild.export.run import export

    medium = out / "datasets" / "MetH-Medium"
    shards = out / "webdataset" / "MetH-Medium"
    ex = export(medium, "webdataset", shards, shard_bytes=64 * 2**20, progress=progress)
    res.lines.append(f"WebDataset export:     {shards}/  ({len(ex.files)} files; load the train split with:)")
    res.lines.append("    import glob, webdataset as wds")
    res.lines.append(f"    ds = wds.WebDataset(sorted(glob.glob('{shards}/MetH-Medium-train-*.tar')), "
                     "shardshuffle=False).decode('pil')")

    log("[6/6] a report page for every dataset (methbuild report)")
    from methbuild.report import build_report, write_index

    reports = []
    for name, folder in [("UltraMNIST", out / "ultramnist"), ("Crawl of real rows", out / "crawl"),
                         *((c.parent.name, c.parent) for c in csvs)]:
        r = build_report(folder, progress=progress)
        reports.append((name, r.index))
    res.index = write_index(reports, out / "index.html", title="methbuild demo: reports")
    res.lines.append(f"Reports:               {len(reports)} pages, linked from {res.index}")
    res.lines.append(f"Total time: {time.perf_counter() - t0:.0f} s")
    return res
