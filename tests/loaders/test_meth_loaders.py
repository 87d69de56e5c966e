"""MetH as the authors' own loaders read it (HPAI-BSC/MetH-baselines).

Their access pattern, reproduced (not their code): ``consts/paths.py`` puts the images folder at
``<project>/datasets/<Name>/data`` and the table at ``<project>/datasets/<Name>/<Name>.csv``;
``baselines/src/datasets.py`` reads the CSV with ``pandas.read_csv``, keeps ``df[df['Split'] == subset]``
for subset in ``train`` / ``validation`` / ``test``, and takes columns **by position**
(``baselines/utils/consts.py``: ID 0, target 1, image file 2, width 3, height 4, ...). An image is
``PIL.Image.open(os.path.join(images_path, row[2])).convert('RGB')``; a class index is the label's
position in ``df['Label'].unique()``, a regression target ``float(label)``.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import recipes
from tests.conftest import run_cli
from tests.loaders.conftest import METH_SCALES

# baselines/utils/consts.py: CsvField
ID, TARGET, IMAGE_FILE, WIDTH, HEIGHT, PRODUCT_SIZE, ASPECT_RATIO, SPLIT = range(8)
SUBSETS = ("train", "validation", "test")  # baselines/utils/consts.py: Split


def paths(project, name: str) -> tuple[str, str]:
    """consts/paths.py: (images_path, csv_path) of a dataset under ``<project>/datasets``."""
    datasets = os.path.join(str(project), "datasets")
    return os.path.join(datasets, name, "data"), os.path.join(datasets, name, f"{name}.csv")


def load_every_row(project, name: str):
    """Every row of every subset, opened the way their Dataset.__getitem__ does: (row, RGB image)."""
    images_path, csv_path = paths(project, name)
    df = pd.read_csv(csv_path)
    for subset in SUBSETS:
        metadata = df[df["Split"] == subset]
        for idx in range(len(metadata)):
            img_name = os.path.join(images_path, metadata.iloc[idx, IMAGE_FILE])
            with Image.open(img_name) as im:
                yield df, metadata.iloc[idx], im.convert("RGB")


def metobjects(met) -> pd.DataFrame:
    """The metadata the mirror served, by object ID, as plain strings (the ground truth of the labels)."""
    return pd.read_csv(met / "MetObjects.csv", dtype=str, keep_default_na=False,
                       encoding="utf-8-sig").set_index("Object ID")


@pytest.mark.parametrize("recipe", list(METH_SCALES))
def test_every_row_loads_with_its_size_and_label(meth, recipe):
    name = METH_SCALES[recipe][0]
    meta = metobjects(meth.met)
    rec = recipes.get(recipe)
    n = 0
    for df, row, image in load_every_row(meth.project, name):
        assert row.iloc[IMAGE_FILE] == f"{row.iloc[ID]}.jpg"  # the bare name, as in the group's MAMe CSV
        assert image.size == (row.iloc[WIDTH], row.iloc[HEIGHT])
        assert row.iloc[PRODUCT_SIZE] == row.iloc[WIDTH] * row.iloc[HEIGHT]
        assert row.iloc[SPLIT] in SUBSETS
        label = row.iloc[TARGET]
        raw = meta.loc[str(row.iloc[ID])]
        if rec.task == "regression":
            assert isinstance(label, (int, np.integer))  # torch.tensor([label], dtype=torch.float) needs a number
            assert float(label) == int(raw["Object Begin Date"]) == int(raw["Object End Date"])
            assert 1500 <= label <= 1900
        else:
            labels2idx = {lab: i for i, lab in enumerate(df["Label"].unique())}
            assert 0 <= labels2idx[label] < len(rec.classes)
            assert label in rec.classes
            spellings = [label] + [raw_name for raw_name, cls in rec.aliases.items() if cls == label]
            assert any(s.casefold() in raw["Culture"].casefold() for s in spellings), (label, raw["Culture"])
        n += 1
    assert n == len(pd.read_csv(paths(meth.project, name)[1]))  # every row, none skipped
    assert n > 0


def test_sr_rows_load_and_lowres_pairs_are_exact(meth_sr):
    n = 0
    for _, row, image in load_every_row(meth_sr.project, "MetH-SR"):
        assert image.size == (row.iloc[WIDTH], row.iloc[HEIGHT])
        assert row.iloc[WIDTH] * row.iloc[HEIGHT] > 12_000_000
        n += 1
    table = pd.read_csv(paths(meth_sr.project, "MetH-SR")[1])
    assert n == len(table) == 10
    # the super-resolution pairing rule: every LR copy times its scale is the (cropped) HR, exactly
    folder = meth_sr.datasets / "MetH-SR"
    for _, row in table[table["Split"] == "test"].iterrows():
        w, h = row["Width"] - row["Width"] % 16, row["Height"] - row["Height"] % 16
        for s in (2, 4, 8, 16):
            with Image.open(folder / "lowres" / f"X{s}" / f"{row['ID']}.png") as lr:
                assert (lr.width * s, lr.height * s) == (w, h)
    # --sr-pairs: the same test set in BasicSR's paired layout, GT cropped to a multiple of lcm(2..16) = 16
    sr = folder / "sr"
    stems = sorted(f"{i}.png" for i in table.loc[table["Split"] == "test", "ID"])
    assert sorted(p.name for p in (sr / "GT").iterdir()) == stems
    meta = (sr / "meta_info.txt").read_text().splitlines()
    assert sorted(line.split(" ")[0] for line in meta) == stems
    for stem in stems:
        with Image.open(sr / "GT" / stem) as gt:
            for s in (2, 4, 8, 16):
                with Image.open(sr / f"LRbicx{s}" / stem) as lr:
                    assert (lr.width * s, lr.height * s) == gt.size
                with Image.open(folder / "lowres" / f"X{s}" / stem) as same:  # the same MATLAB-bicubic pixels
                    assert np.array_equal(np.asarray(same), np.asarray(Image.open(sr / f"LRbicx{s}" / stem)))


def test_old_manifest_form_rebuilds_with_bare_names(meth, tmp_path):
    """A manifest written before 0.2 (``Image file`` = ``data/<id>.jpg``) still rebuilds, into the bare form."""
    src = pd.read_csv(meth.datasets / "MetH-Period" / "MetH-Period.csv")
    old = src.head(5).copy()
    old["Image file"] = "data/" + old["Image file"]
    old.to_csv(tmp_path / "MetH-Period.csv", index=False)
    from methbuild.met.mirror import serve_in_thread

    with serve_in_thread(synthetic=1500, seed=3, mp_range=(0.3, 1.2)) as mirror:
        proc = run_cli("build", "--manifest", tmp_path / "MetH-Period.csv", "--out", tmp_path / "datasets",
                       "--met", meth.met, "--api-url", mirror, "--quiet")
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(tmp_path / "datasets" / "MetH-Period" / "MetH-Period.csv")
    assert list(got["Image file"]) == [f"{i}.jpg" for i in got["ID"]]
    for _, row, image in load_every_row(tmp_path, "MetH-Period"):
        assert image.size == (row.iloc[WIDTH], row.iloc[HEIGHT])


def test_our_own_readers_follow_the_bare_image_file(meth, tmp_path):
    """lowres, stats (a sha256 overlap that hashes the files) and buckets read a built MetH CSV whose
    `Image file` is the bare name, and an old-form copy (`data/<id>.jpg`) of it, to the same images."""
    csv_path = meth.datasets / "MetH-Cultures" / "MetH-Cultures.csv"
    table = pd.read_csv(csv_path)
    assert not table["Image file"].str.contains("/").any()
    bare = csv_path.with_name("bare-form.csv")  # no sha256 column: stats must open and hash every file
    old = csv_path.with_name("old-form.csv")
    table.drop(columns="sha256").to_csv(bare, index=False)
    table.drop(columns="sha256").assign(**{"Image file": "data/" + table["Image file"]}).to_csv(old, index=False)
    try:
        for src, out in ((csv_path, tmp_path / "lr-new"), (old, tmp_path / "lr-old")):
            proc = run_cli("lowres", src, "--out", out, "--scales", 2, "--workers", 1, "--strict")
            assert proc.returncode == 0, proc.stderr
            assert sorted(p.name for p in (out / "X2").iterdir()) == sorted(
                f.replace(".jpg", ".png") for f in table["Image file"])
        proc = run_cli("stats", csv_path, bare, old, "--overlap-by", "sha256", "--no-figure", "--sample", 0,
                       "--out", tmp_path / "st")
        assert proc.returncode == 0, proc.stderr
        overlap = pd.read_csv(tmp_path / "st" / "overlap.csv")
        assert len(overlap) == 6 and (overlap["percent"] == 100.0).all(), overlap
        proc = run_cli("buckets", csv_path, "--out", tmp_path / "plan" / "PLAN", "-K", 1, "-M", 2)
        assert proc.returncode == 0, proc.stderr
    finally:
        bare.unlink()
        old.unlink()
