"""`methbuild build` end to end against a local Met mirror on 127.0.0.1 (no internet)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from methbuild.met.mirror import serve_in_thread
from methbuild.recipe import PUBLISHED_COLUMNS
from tests.conftest import assert_user_error, run_cli

SMALL = {"meth-medium": 0.003, "meth-cultures": 0.004, "meth-period": 0.002}
FOLDER = {"meth-medium": "MetH-Medium", "meth-cultures": "MetH-Cultures", "meth-period": "MetH-Period",
          "meth-sr": "MetH-SR"}


@pytest.fixture(scope="module")
def mirror():
    # small images (0.3–1.2 MP) keep the test fast; the size rule (>= 500×500) still bites some
    with serve_in_thread(synthetic=1500, seed=3, mp_range=(0.3, 1.2)) as url:
        yield url


@pytest.fixture(scope="module")
def met(mirror, tmp_path_factory) -> Path:
    met = tmp_path_factory.mktemp("met")
    proc = run_cli("met", "csv", "--url", mirror.root + "/MetObjects.csv", "--out", met / "MetObjects.csv")
    assert proc.returncode == 0, proc.stderr
    return met


def build(mirror, met: Path, out: Path, *args) -> object:
    return run_cli("build", *args, "--out", out, "--met", met, "--api-url", mirror, "--quiet", "--api-rate", 80)


@pytest.fixture(scope="module")
def built(mirror, met, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("datasets")
    for name, scale in SMALL.items():
        proc = build(mirror, met, out, name, "--scale", scale)
        assert proc.returncode == 0, proc.stderr
        assert FOLDER[name] in proc.stdout
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", list(SMALL))
def test_layout_and_files(built: Path, met: Path, name: str):
    folder = built / FOLDER[name]
    table = pd.read_csv(folder / f"{FOLDER[name]}.csv")
    assert list(table.columns[:8]) == PUBLISHED_COLUMNS
    assert set(table["Split"]) == {"train", "validation", "test"}
    assert table["ID"].is_unique
    objects = pd.read_parquet(met / "crawl" / "objects.parquet").set_index("object_id")
    for _, row in table.sample(min(len(table), 12), random_state=0).iterrows():
        path = folder / "data" / row["Image file"]
        assert row["Image file"] == f"{row['ID']}.jpg"  # the bare name (SPEC §2), relative to data/
        with Image.open(path) as im:
            assert im.size == (row["Width"], row["Height"])
        assert row["Width"] >= 500 and row["Height"] >= 500
        assert row["Product size"] == row["Width"] * row["Height"]
        assert abs(row["Aspect ratio"] - row["Width"] / row["Height"]) < 1e-5
        assert _sha(path) == row["sha256"] == objects.at[row["ID"], "sha256"]  # the original, not re-encoded
    assert len(list((folder / "data").iterdir())) == len(table)
    card = (folder / "README.md").read_text()
    assert "CC0" in card and "## Splits" in card and f"recipe {name}" in card
    import mlcroissant as mlc

    ds = mlc.Dataset(jsonld=folder / "croissant.json")  # raises on an invalid document
    assert ds.metadata.name == FOLDER[name]
    assert not ds.metadata.ctx.issues.warnings


def test_classification_balance(built: Path):
    table = pd.read_csv(built / "MetH-Medium" / "MetH-Medium.csv")
    per = table.groupby(["Label", "Split"]).size().unstack()
    assert len(per) == 23
    assert (per["train"] == 3).all() and (per["validation"] == 1).all() and (per["test"] == 1).all()


def test_period_years_and_test_size(built: Path):
    table = pd.read_csv(built / "MetH-Period" / "MetH-Period.csv")
    assert table["Label"].between(1500, 1900).all()
    trainval = table[table["Split"] != "test"]
    bins = (trainval["Label"].clip(upper=1899) - 1500) // 50
    assert bins.value_counts().sort_index().tolist() == [3] * 8  # 2 train + 1 validation per bin
    assert (table["Split"] == "test").sum() == round(27_362 * 0.002)


def test_same_seed_same_bytes_and_manifest_round_trip(built: Path, mirror, met: Path, tmp_path: Path):
    again = tmp_path / "again"
    proc = build(mirror, met, again, "meth-medium", "--scale", SMALL["meth-medium"])
    assert proc.returncode == 0, proc.stderr
    original = built / "MetH-Medium" / "MetH-Medium.csv"
    assert (again / "MetH-Medium" / "MetH-Medium.csv").read_bytes() == original.read_bytes()
    other = tmp_path / "seed1"
    proc = build(mirror, met, other, "meth-medium", "--scale", SMALL["meth-medium"], "--seed", 1)
    assert proc.returncode == 0, proc.stderr
    assert (other / "MetH-Medium" / "MetH-Medium.csv").read_bytes() != original.read_bytes()
    # our manifest rebuilds exactly (into a fresh crawl state: everything is fetched again and verified)
    rebuilt = tmp_path / "rebuilt"
    proc = run_cli("build", "--manifest", original, "--out", rebuilt, "--met", tmp_path / "met2", "--api-url", mirror,
                   "--quiet", "--api-rate", 80)
    assert proc.returncode == 0, proc.stderr
    assert (rebuilt / "MetH-Medium" / "MetH-Medium.csv").read_bytes() == original.read_bytes()


def test_published_style_manifest_and_sha_mismatch(built: Path, mirror, met: Path, tmp_path: Path):
    table = pd.read_csv(built / "MetH-Cultures" / "MetH-Cultures.csv")
    published = table[["ID", "Label", "Split"]].head(6).copy()
    published["Split"] = published["Split"].replace({"validation": "val"})
    path = tmp_path / "published.csv"
    published.to_csv(path, index=False)
    out = tmp_path / "out"
    proc = run_cli("build", "--manifest", path, "--out", out, "--met", met, "--api-url", mirror, "--quiet")
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(out / "published" / "published.csv")
    assert sorted(got["ID"]) == sorted(published["ID"]) and set(got["Split"]) <= {"train", "validation", "test"}
    bad = table[["ID", "Label", "Split", "sha256"]].head(3).copy()
    bad.loc[bad.index[0], "sha256"] = "0" * 64
    bad.to_csv(tmp_path / "bad.csv", index=False)
    proc = run_cli("build", "--manifest", tmp_path / "bad.csv", "--out", tmp_path / "o2", "--met", met,
                   "--api-url", mirror, "--quiet")
    assert_user_error(proc, "sha256")


def test_short_classes_error_lists_them(tmp_path: Path):
    with serve_in_thread(synthetic=120, seed=4, mp_range=(0.3, 0.6)) as url:
        met = tmp_path / "met"
        assert run_cli("met", "csv", "--url", url.root + "/MetObjects.csv", "--out", met / "MetObjects.csv").returncode == 0
        proc = build(url, met, tmp_path / "o", "meth-cultures", "--scale", 1)
    assert_user_error(proc, "not enough", "Roman:", "of 1000")
    assert not (tmp_path / "o" / "MetH-Cultures").exists()  # nothing half-written


@pytest.mark.parametrize("args, needles", [
    (["meth-nothing"], ["unknown recipe", "meth-medium"]),
    (["meth-medium", "--scale", "0"], ["--scale"]),
    (["meth-medium", "--metadata", "/no/such.csv"], ["/no/such.csv"]),
    ([], ["recipe NAME or --manifest"]),
])
def test_bad_arguments(tmp_path: Path, args, needles):
    assert_user_error(run_cli("build", *args, "--out", tmp_path / "o", "--met", tmp_path / "met"), *needles)


def test_sr_with_lowres(tmp_path_factory):
    out = tmp_path_factory.mktemp("sr")
    with serve_in_thread(synthetic=60, seed=5, mp_range=(12.1, 12.6), noise=0) as url:
        met = out / "met"
        assert run_cli("met", "csv", "--url", url.root + "/MetObjects.csv", "--out", met / "MetObjects.csv").returncode == 0
        proc = run_cli("build", "meth-sr", "--scale", 0.0005, "--out", out / "ds", "--met", met, "--api-url", url,
                       "--quiet", "--api-rate", 80)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out / "ds" / "MetH-SR" / "MetH-SR.csv")
    assert table["Split"].value_counts().to_dict() == {"train": 8, "test": 2}
    assert (table["Product size"] > 12_000_000).all()
    lr = out / "ds" / "MetH-SR" / "lowres"
    for _, row in table[table["Split"] == "test"].iterrows():
        cw, ch = row["Width"] // 16 * 16, row["Height"] // 16 * 16
        for s in (2, 4, 8, 16):
            with Image.open(lr / f"X{s}" / f"{row['ID']}.png") as im:
                assert im.size == (cw // s, ch // s)
    assert (lr / "lowres.csv").is_file()


def _small_manifest(built: Path, path: Path, rows: int) -> Path:
    table = pd.read_csv(built / "MetH-Medium" / "MetH-Medium.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    table[["ID", "Label", "Split", "sha256"]].head(rows).to_csv(path, index=False)
    return path


def test_manifest_name_is_a_plain_folder_inside_out(built: Path, mirror, met: Path, tmp_path: Path):
    """A manifest called `...csv` (stem `..`) once wrote README.md, data/ ... into <out>/..; now the name
    must be one plain folder name, from the file or --name, and nothing lands outside <out>."""
    manifest = _small_manifest(built, tmp_path / "in" / "...csv", 4)
    parent = tmp_path / "parent"
    out = parent / "out"
    proc = build(mirror, met, out, "--manifest", manifest)
    assert_user_error(proc, "plain folder name", "--name")
    assert not parent.exists()
    proc = build(mirror, met, out, "--manifest", manifest, "--name", "../escape")
    assert_user_error(proc, "plain folder name")
    proc = build(mirror, met, out, "--manifest", manifest, "--name", "Small-Medium")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in parent.iterdir()) == ["out"]
    assert len(pd.read_csv(out / "Small-Medium" / "Small-Medium.csv")) == 4
    assert_user_error(build(mirror, met, out, "meth-medium", "--name", "X"), "--name goes with --manifest")


def test_a_rebuild_deletes_only_files_an_earlier_build_placed(built: Path, mirror, met: Path, tmp_path: Path):
    out = tmp_path / "out"
    data = out / "Mine" / "data"
    data.mkdir(parents=True)
    (data / "notes.txt").write_text("the user's own file")
    (data / "123456789.jpg").write_bytes(b"not from the crawl")
    proc = build(mirror, met, out, "--manifest", _small_manifest(built, tmp_path / "Mine.csv", 6))
    assert proc.returncode == 0, proc.stderr
    first = pd.read_csv(out / "Mine" / "Mine.csv")
    assert len(first) == 6
    # the same dataset, smaller: the 4 images it no longer lists go, the user's files stay
    proc = build(mirror, met, out, "--manifest", _small_manifest(built, tmp_path / "Mine.csv", 2))
    assert proc.returncode == 0, proc.stderr
    kept = {f"{i}.jpg" for i in pd.read_csv(out / "Mine" / "Mine.csv")["ID"]}
    assert len(kept) == 2
    assert sorted(p.name for p in data.iterdir()) == sorted(kept | {"notes.txt", "123456789.jpg"})
    assert (data / "notes.txt").read_text() == "the user's own file"
    assert (data / "123456789.jpg").read_bytes() == b"not from the crawl"
