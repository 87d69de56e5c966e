"""Small datasets of every kind `methbuild report` reads, made in code through methbuild's own writers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

MEDIUM_CLASSES = ["Bronze", "Gold", "Silk"]


def _jpeg(path: Path, w: int, h: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
    Image.fromarray(small).resize((w, h), Image.BILINEAR).save(path, quality=85)


def meth_dataset(out: Path, recipe_name: str = "meth-medium", *, per_class: tuple[int, int, int] = (4, 1, 1),
                 ids_from: int = 1000, duplicate: bool = True, lowres: bool = False) -> Path:
    """A built MetH dataset: <Title>/<Title>.csv (bare Image file), data/, README.md, croissant.json."""
    import recipes
    from methbuild.build import dataset_table
    from methbuild.dataset_card import Provenance, write_card, write_croissant

    recipe = recipes.get(recipe_name)
    folder = out / recipe.title
    (folder / "data").mkdir(parents=True)
    rows = []
    oid = ids_from
    rng = np.random.default_rng(ids_from)
    if recipe.task == "regression":
        labels = [str(y) for y in (1510, 1560, 1620, 1700, 1760, 1830, 1890)]
    elif recipe.task == "classification":
        labels = MEDIUM_CLASSES
    else:
        labels = [""]
    for label in labels:
        for split, n in zip(("train", "validation", "test"), per_class):
            for _ in range(n):
                w, h = int(rng.integers(520, 900)), int(rng.integers(520, 900))
                if lowres:
                    w, h = int(rng.integers(400, 700)) // 16 * 16 + 7, int(rng.integers(400, 700)) // 16 * 16 + 3
                rows.append({"ID": oid, "Label": label, "Split": split, "width": w, "height": h,
                             "image_file": f"{oid}.jpg", "url": f"https://images.example/{oid}.jpg"})
                oid += 1
    rows[-1]["width"], rows[-1]["height"] = 2400, 600  # an elongated extreme
    shas = []
    import hashlib

    for k, r in enumerate(rows):
        p = folder / "data" / r["image_file"]
        if duplicate and k == 1:  # the same bytes as row 0: one duplicate group
            p.write_bytes((folder / "data" / rows[0]["image_file"]).read_bytes())
            r["width"], r["height"] = rows[0]["width"], rows[0]["height"]
        else:
            _jpeg(p, r["width"], r["height"], seed=k)
        shas.append(hashlib.sha256(p.read_bytes()).hexdigest())
    split = pd.DataFrame(rows)
    split["sha256"] = shas
    split["Accession number"] = [f"19.{i}" for i in split["ID"]]
    table = dataset_table(recipe, split)
    table.to_csv(folder / f"{recipe.title}.csv", index=False)
    source = f"recipe {recipe.name} {recipe.version}"
    write_card(recipe, table, folder, scale=0.001, source=source)
    import datetime as dt

    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    write_croissant(recipe, table, folder, Provenance(source=source, api_url="http://127.0.0.1:1/api", scale=0.001,
                                                       downloaded=(when, when + dt.timedelta(minutes=5))))
    if lowres:
        from methbuild.lowres import build_lowres

        test = [folder / "data" / f for f in table.loc[table["Split"] == "test", "Image file"]]
        build_lowres(test, folder / "lowres", progress=False, workers=1)
    return folder


def ultramnist(out: Path) -> Path:
    from methbuild.synth.ultramnist import Options, generate

    folder = out / "ultramnist"
    generate(Options(n=4, size=512, out=folder, progress=False, workers=1))
    return folder


def imagenet(out: Path, side: int = 16, classes: int = 3, per_class: int = 20) -> Path:
    from methbuild.io.imagenet_batches import TRAIN_STEMS, VAL_STEM, train_batch_bounds, write_batch

    folder = out / "imagenet16"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    n = classes * per_class
    labels = [1 + i % classes for i in range(n)]
    data = rng.integers(0, 255, size=(n, 3 * side * side), dtype=np.uint8)
    data[5] = data[2]  # identical pixels: one duplicate group
    mean = data.mean(axis=0)
    for stem, (a, b) in zip(TRAIN_STEMS, train_batch_bounds(n)):
        write_batch(folder / stem, data[a:b], labels[a:b], mean)
    write_batch(folder / VAL_STEM, data[:classes], list(range(1, classes + 1)))
    (folder / "downsample.json").write_text(json.dumps({"tool": "methbuild test", "format": "pickle",
                                                        "config": {"size": side, "method": "box", "seed": 0}}))
    return folder


def crawl(out: Path) -> Path:
    """A crawl folder through the crawl state's own API: downloads, a 404, a refusal, a corrupt image."""
    from methbuild.met import state as st
    from methbuild.met.crawl import _export

    folder = out / "crawl"
    (folder / "images").mkdir(parents=True)
    with st.CrawlState(folder / "crawl.sqlite") as s:
        s.add_ids(range(1, 9))
        s.set_meta("api_url", "http://127.0.0.1:1/api")
        for oid in range(1, 6):
            _jpeg(folder / "images" / f"{oid}.jpg", 600 + 40 * oid, 500, seed=oid)
            s.save_record(oid, {"objectID": oid, "department": "Arms and Armor" if oid % 2 else "Asian Art"})
            s.finish(oid, st.DOWNLOADED, url=f"https://images.example/{oid}.jpg", image_file=f"images/{oid}.jpg",
                     nbytes=(folder / "images" / f"{oid}.jpg").stat().st_size, sha256=f"{oid:064x}",
                     width=600 + 40 * oid,
                     height=500)
        s.finish(6, st.NOT_FOUND, error="API answered 404 for object 6")
        s.finish(7, st.REFUSED, error="image host 'evil.example' is not allowed (use --allow-host)")
        s.note_attempt(8, "undecodable image: broken data", status=None)
        s.note_attempt(8, "undecodable image: broken data", status=st.FAILED)
        _export(s, folder)
    return folder
