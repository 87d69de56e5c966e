"""`methbuild export`: every format loaded by the real libraries, bytes and labels checked per sample."""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import assert_user_error, run_cli
from tests.export.sources import make_crawl, make_meth, make_ultramnist, sha

CLASSES = ["Bronze", "Gold", "Silk", "Silver", "Wood"]  # sorted class names of make_meth's default labels


def _meth_rows(folder: Path) -> dict[str, dict]:
    with open(folder / f"{folder.name}.csv", encoding="utf-8") as fh:
        return {r["ID"]: r for r in csv.DictReader(fh)}


def _export(*args, ok=True):
    proc = run_cli("export", *map(str, args))
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def _tree_bytes(folder: Path) -> dict[str, str]:
    """sha256 of every visible file under ``folder`` (relative path → digest)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and not any(part.startswith(".") for part in Path(rel).parts):
            out[rel] = sha(p.read_bytes())
    return out


# ----------------------------------------------------------------------------- webdataset


def test_webdataset_every_sample_bytes_json_and_class(tmp_path):
    import webdataset as wds

    src = make_meth(tmp_path, png_ids={1000 + 37 * 7})
    rows = _meth_rows(src)
    out = tmp_path / "wds"
    proc = _export(src, "--to", "webdataset", "--out", out, "--shard-size", 3)
    assert "exported 12 images of MetH-Test (train 8, validation 2, test 2)" in proc.stdout and "5 shard(s)" in proc.stdout
    shards = sorted(glob.glob(str(out / "MetH-Test-*-*.tar")))
    assert [Path(s).name for s in shards] == [
        "MetH-Test-test-000000.tar", "MetH-Test-train-000000.tar", "MetH-Test-train-000001.tar",
        "MetH-Test-train-000002.tar", "MetH-Test-validation-000000.tar"]
    seen = {}
    for sample in wds.WebDataset(shards, shardshuffle=False):
        key = sample["__key__"]
        row = rows[key]
        image_ext = "png" if key == str(1000 + 37 * 7) else "jpg"  # by the real format, not the file name
        assert image_ext in sample and ({"jpg", "png"} - {image_ext}).isdisjoint(sample)
        assert sha(sample[image_ext]) == row["sha256"]
        meta = json.loads(sample["json"])
        assert list(meta) == list(row)  # every CSV column, named as written, in order
        assert meta["ID"] == int(key) and meta["Width"] == int(row["Width"]) and meta["Label"] == row["Label"]
        assert meta["Image file"] == row["Image file"] and meta["sha256"] == row["sha256"]
        assert meta["Aspect ratio"] == pytest.approx(float(row["Aspect ratio"]))
        assert int(sample["cls"]) == CLASSES.index(row["Label"])
        seen[key] = meta["Split"]
    assert seen == {k: r["Split"] for k, r in rows.items()}
    # Within a shard the samples are in key order; members carry fixed owners and times.
    with tarfile.open(shards[1]) as tf:
        members = tf.getmembers()
    assert [m.name for m in members][:3] == ["1000.jpg", "1000.json", "1000.cls"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    meta = json.loads((out / "export.json").read_text())
    assert meta["classes"] == CLASSES and meta["format"] == "webdataset"


def test_index_offsets_read_back_the_exact_bytes(tmp_path):
    src = make_meth(tmp_path)
    rows = _meth_rows(src)
    out = tmp_path / "wds"
    _export(src, "--to", "webdataset", "--out", out, "--shard-size", 5)
    index = pq.read_table(out / "index.parquet").to_pylist()
    assert sorted(r["key"] for r in index) == sorted(rows)
    assert list(index[0]) == ["shard", "key", "member", "offset", "length", "width", "height", "label", "cls",
                              "split", "bucket"]
    for r in index:
        with open(out / r["shard"], "rb") as fh:
            fh.seek(r["offset"])
            data = fh.read(r["length"])
        src_row = rows[r["key"]]
        assert sha(data) == src_row["sha256"]
        assert (r["width"], r["height"]) == (int(src_row["Width"]), int(src_row["Height"]))
        assert r["label"] == src_row["Label"] and r["cls"] == CLASSES.index(src_row["Label"])
        assert r["split"] == src_row["Split"] and r["bucket"] is None


def test_shards_are_cut_by_count_and_by_bytes(tmp_path):
    src = make_meth(tmp_path)
    big = src / "data" / "1000.jpg"  # one image far above the byte limit: a shard of its own
    from tests.export.sources import image_bytes

    data = image_bytes(300, 300, seed=1)
    big.write_bytes(data)
    lines = (src / "MetH-Test.csv").read_text().splitlines()
    lines = [ln if not ln.startswith("1000,") else ",".join(ln.split(",")[:3] + ["300", "300", "90000", "1.0"]
                                                             + ln.split(",")[7:-1] + [sha(data)]) for ln in lines]
    (src / "MetH-Test.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "wds"
    limit = 40_000
    assert len(data) > limit
    _export(src, "--to", "webdataset", "--out", out, "--shard-size", 3, "--shard-bytes", limit)
    index = pq.read_table(out / "index.parquet").to_pandas()
    for shard, group in index.groupby("shard"):
        assert len(group) <= 3
        size = (out / shard).stat().st_size
        if len(group) > 1:
            assert size <= limit + 10240  # the limit, plus the end-of-archive padding
        else:
            assert group["key"].iloc[0] == "1000" or size <= limit + 10240
    assert len(index[index["key"] == "1000"]) == 1
    assert (index.groupby("shard").size()[index.loc[index["key"] == "1000", "shard"].iloc[0]]) == 1


# ----------------------------------------------------------------------------- parquet


def test_parquet_loads_with_datasets_as_image_and_classlabel(tmp_path, hf_cache):
    import datasets

    src = make_meth(tmp_path, png_ids={1000 + 37 * 3})
    rows = _meth_rows(src)
    out = tmp_path / "pq"
    _export(src, "--to", "parquet", "--out", out, "--shard-size", 3)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert files == ["test/test-00000-of-00001.parquet", "train/train-00000-of-00003.parquet",
                     "train/train-00001-of-00003.parquet", "train/train-00002-of-00003.parquet",
                     "validation/validation-00000-of-00001.parquet"]
    dd = datasets.load_dataset("parquet", data_dir=str(out), cache_dir=hf_cache)
    assert set(dd) == {"train", "validation", "test"}
    feats = dd["train"].features
    assert isinstance(feats["image"], datasets.Image)
    assert isinstance(feats["label"], datasets.ClassLabel) and feats["label"].names == CLASSES
    assert list(feats)[2:] == list(next(iter(rows.values())))  # image, label, then every CSV column
    seen = set()
    for split, ds in dd.items():
        first = ds[0]["image"]
        assert first.size == (int(rows[str(ds[0]["ID"])]["Width"]), int(rows[str(ds[0]["ID"])]["Height"]))
        for ex in ds.cast_column("image", datasets.Image(decode=False)):
            row = rows[str(ex["ID"])]
            assert sha(ex["image"]["bytes"]) == row["sha256"]
            assert ex["image"]["path"] == f"{ex['ID']}.jpg"
            assert feats["label"].int2str(ex["label"]) == row["Label"] == ex["Label"]
            assert ex["Split"] == split
            seen.add(str(ex["ID"]))
    assert seen == set(rows)
    one = datasets.Dataset.from_parquet(str(out / files[0]), cache_dir=hf_cache)
    assert isinstance(one.features["label"], datasets.ClassLabel) and len(one) == 2


def test_parquet_row_groups_are_cut_by_bytes(tmp_path):
    from methbuild.export import export

    src = make_meth(tmp_path)
    total = sum(p.stat().st_size for p in (src / "data").iterdir())
    res = export(src, "parquet", tmp_path / "pq", splits=["train"], row_group_bytes=total // 8, progress=False)
    assert res.written == 1
    f = pq.ParquetFile(tmp_path / "pq" / "train" / "train-00000-of-00001.parquet")
    assert f.metadata.num_rows == 8 and f.metadata.num_row_groups > 2
    assert b"huggingface" in f.schema_arrow.metadata


def test_regression_and_unlabelled_datasets(tmp_path, hf_cache):
    import datasets
    import webdataset as wds

    period = make_meth(tmp_path, "MetH-Period", labels=[str(1500 + 37 * i) for i in range(8)],
                       splits=["train"] * 4 + ["validation"] * 2 + ["test"] * 2)
    _export(period, "--to", "parquet", "--out", tmp_path / "pq")
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "pq"), cache_dir=hf_cache)["train"]
    assert ds.features["label"] == datasets.Value("int64") and ds.features["Label"] == datasets.Value("int64")
    assert all(ex["label"] == ex["Label"] and 1500 <= ex["label"] <= 1900 for ex in ds)

    sr = make_meth(tmp_path, "MetH-SR", labels=[""] * 6, splits=["train"] * 4 + ["test"] * 2)
    _export(sr, "--to", "webdataset", "--out", tmp_path / "wds")
    samples = list(wds.WebDataset(sorted(glob.glob(str(tmp_path / "wds" / "*.tar"))), shardshuffle=False))
    assert len(samples) == 6 and all("cls" not in s for s in samples)
    index = pq.read_table(tmp_path / "wds" / "index.parquet").to_pylist()
    assert all(r["label"] is None and r["cls"] is None for r in index)


# ----------------------------------------------------------------------------- imagefolder


def test_imagefolder_loads_with_datasets_and_links_the_originals(tmp_path, hf_cache):
    import datasets

    src = make_meth(tmp_path)
    rows = _meth_rows(src)
    out = tmp_path / "if"
    _export(src, "--to", "imagefolder", "--out", out)
    for r in rows.values():
        linked = out / r["Split"] / f"{r['ID']}.jpg"
        assert os.path.samefile(linked, src / "data" / f"{r['ID']}.jpg")  # a hard link, not a copy
    with open(out / "train" / "metadata.csv", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header[:2] == ["file_name", "label"] and header[2:] == list(next(iter(rows.values())))
    dd = datasets.load_dataset("imagefolder", data_dir=str(out), cache_dir=hf_cache)
    assert set(dd) == {"train", "validation", "test"}
    seen = set()
    for split, ds in dd.items():
        assert ds[0]["image"].size == (ds[0]["Width"], ds[0]["Height"])
        for ex in ds.cast_column("image", datasets.Image(decode=False)):
            row = rows[str(ex["ID"])]
            data = ex["image"]["bytes"] or Path(ex["image"]["path"]).read_bytes()
            assert sha(data) == row["sha256"]
            assert ex["label"] == CLASSES.index(row["Label"]) and ex["Split"] == split
            seen.add(str(ex["ID"]))
    assert seen == set(rows)


# ----------------------------------------------------------------------------- other sources


def test_ultramnist_folder_classes_are_the_digit_sums(tmp_path):
    import webdataset as wds

    src = make_ultramnist(tmp_path)
    truth = {}
    for split in ("train", "test"):
        with open(src / f"{split}.csv") as fh:
            for r in csv.DictReader(fh):
                truth[r["id"]] = (split, int(r["digit_sum"]), sha((src / split / f"{r['id']}.jpeg").read_bytes()))
    out = tmp_path / "wds"
    _export(src, "--to", "webdataset", "--out", out, "--split", "test,train")
    n = 0
    for s in wds.WebDataset(sorted(glob.glob(str(out / "*.tar"))), shardshuffle=False):
        split, digit_sum, digest = truth[s["__key__"]]
        meta = json.loads(s["json"])
        assert sha(s["jpg"]) == digest and int(s["cls"]) == digit_sum == meta["digit_sum"]
        assert meta["split"] == split and meta["width"] > 0 and meta["height"] == 32
        n += 1
    assert n == len(truth)
    assert json.loads((out / "export.json").read_text())["classes"] == [str(i) for i in range(28)]


def test_crawl_folder_exports_downloaded_rows_only(tmp_path, hf_cache):
    import datasets

    src = make_crawl(tmp_path)
    out = tmp_path / "pq"
    _export(src / "objects.csv", "--to", "parquet", "--out", out)
    ds = datasets.load_dataset("parquet", data_dir=str(out), cache_dir=hf_cache)["train"]
    assert sorted(ds["object_id"]) == [42, 77, 501] and "label" not in ds.features
    for ex in ds.cast_column("image", datasets.Image(decode=False)):
        assert sha(ex["image"]["bytes"]) == ex["sha256"]


# ----------------------------------------------------------------------------- --plan


def test_plan_adds_bucket_and_padded_shape(tmp_path):
    import webdataset as wds

    src = make_meth(tmp_path)
    plan = tmp_path / "plan"
    proc = run_cli("buckets", src / "MetH-Test.csv", "--out", plan, "-K", "2", "-M", "2", "--no-plot")
    assert proc.returncode == 0, proc.stderr
    with open(f"{plan}.csv") as fh:
        by_id = {r["id"]: r for r in csv.DictReader(fh)}
    out = tmp_path / "wds"
    _export(src, "--to", "webdataset", "--out", out, "--plan", f"{plan}.csv")
    for s in wds.WebDataset(sorted(glob.glob(str(out / "*.tar"))), shardshuffle=False):
        meta = json.loads(s["json"])
        p = by_id[s["__key__"]]
        assert (meta["bucket"], meta["padded_width"], meta["padded_height"]) == (
            int(p["bucket"]), int(p["padded_width"]), int(p["padded_height"]))
    index = pq.read_table(out / "index.parquet").to_pylist()
    assert {r["key"]: r["bucket"] for r in index} == {k: int(p["bucket"]) for k, p in by_id.items()}


# ----------------------------------------------------------------------------- determinism and resume


@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_same_input_same_bytes_for_any_worker_count(tmp_path, fmt):
    src = make_meth(tmp_path)
    _export(src, "--to", fmt, "--out", tmp_path / "a", "--shard-size", 3, "--workers", 1)
    _export(src, "--to", fmt, "--out", tmp_path / "b", "--shard-size", 3, "--workers", 2)
    a, b = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert len(a) >= 5 and a == b


def test_rerun_rewrites_only_the_missing_shard(tmp_path):
    src = make_meth(tmp_path)
    out = tmp_path / "wds"
    _export(src, "--to", "webdataset", "--out", out, "--shard-size", 3)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    digests = _tree_bytes(out)
    gone = "MetH-Test-train-000001.tar"
    (out / gone).unlink()
    proc = _export(src, "--to", "webdataset", "--out", out, "--shard-size", 3)
    assert "1 written, 4 kept" in proc.stdout
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    assert {k for k in before if before[k] != after[k]} == {gone}
    assert _tree_bytes(out) == digests
    # A shard changed on disk behind our back is rewritten too; a new cut removes the old shards.
    with open(out / "MetH-Test-test-000000.tar", "ab") as fh:
        fh.write(b"\0" * 512)
    assert "1 written, 4 kept" in _export(src, "--to", "webdataset", "--out", out, "--shard-size", 3).stdout
    assert _tree_bytes(out) == digests
    proc = _export(src, "--to", "webdataset", "--out", out, "--shard-size", 100)
    assert "1 written, 2 kept, 2 stale removed" in proc.stdout
    assert sorted(p.name for p in out.glob("*.tar")) == [
        "MetH-Test-test-000000.tar", "MetH-Test-train-000000.tar", "MetH-Test-validation-000000.tar"]
    assert len(pq.read_table(out / "index.parquet")) == 12


# ----------------------------------------------------------------------------- user errors


def test_user_errors_are_one_line(tmp_path):
    src = make_meth(tmp_path)
    out = tmp_path / "out"
    assert_user_error(_export(tmp_path / "nope", "--to", "webdataset", "--out", out, ok=False), "does not exist")
    assert_user_error(_export(src, "--to", "tfrecord", "--out", out, ok=False), "tfrecord")
    assert_user_error(_export(src, "--to", "webdataset", "--out", out, "--shard-bytes", "nan", ok=False), "nan")
    assert_user_error(_export(src, "--to", "webdataset", "--out", out, "--shard-bytes", "0", ok=False), "positive")
    assert_user_error(_export(src, "--to", "webdataset", "--out", out, "--split", "train,dev", ok=False),
                      "dev", "train, validation, test")
    assert_user_error(_export(tmp_path, "--to", "parquet", "--out", out, ok=False), "not a MetH dataset")
    assert_user_error(_export(src, "--to", "parquet", "--out", out, "--plan", tmp_path / "none.csv", ok=False),
                      "--plan")
    (src / "data" / f"{1000 + 37 * 7}.jpg").unlink()
    assert_user_error(_export(src, "--to", "webdataset", "--out", out, ok=False), "cannot be read",
                      f"{1000 + 37 * 7}.jpg")
    assert not list(out.glob("*.tar")) and not (out / "index.parquet").exists()


def test_a_folder_keeps_one_format(tmp_path):
    src = make_meth(tmp_path)
    out = tmp_path / "out"
    _export(src, "--to", "webdataset", "--out", out)
    assert_user_error(_export(src, "--to", "parquet", "--out", out, ok=False), "holds a webdataset export")


def test_image_file_paths_in_both_forms_resolve(tmp_path):
    """The published bare `1000.jpg` and the pre-0.2 `data/1000.jpg` name the same file."""
    src = make_meth(tmp_path, old_form_every=2)
    rows = _meth_rows(src)
    assert {"/" in r["Image file"] for r in rows.values()} == {True, False}
    out = tmp_path / "if"
    _export(src, "--to", "imagefolder", "--out", out)
    assert sorted(p.name for p in out.glob("*/*.jpg")) == sorted(f"{k}.jpg" for k in rows)
    assert hashlib.sha256((out / "train" / "1000.jpg").read_bytes()).hexdigest() == rows["1000"]["sha256"]


def test_dask_scheduler_writes_the_same_bytes(tmp_path):
    src = make_meth(tmp_path)
    _export(src, "--to", "webdataset", "--out", tmp_path / "a", "--shard-size", 4)
    _export(src, "--to", "webdataset", "--out", tmp_path / "b", "--shard-size", 4, "--scheduler", "local:2")
    a, b = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert len(a) >= 4 and a == b


def test_interrupted_run_leftovers_are_redone(tmp_path):
    """A temp file of a killed run is removed; a shard renamed but never recorded is written again."""
    src = make_meth(tmp_path)
    out = tmp_path / "wds"
    _export(src, "--to", "webdataset", "--out", out, "--shard-size", 3)
    digests = _tree_bytes(out)
    stale = out / ".MetH-Test-train-000002.tar.tmp-killed"
    stale.write_bytes(b"half a shard")
    next((out / ".methbuild-export").glob("MetH-Test-train-000000.tar.json")).unlink()
    proc = _export(src, "--to", "webdataset", "--out", out, "--shard-size", 3)
    assert "1 written, 4 kept" in proc.stdout
    assert not stale.exists() and _tree_bytes(out) == digests
    # Killed between rename and seal under another cut: the unrecorded shard is not left beside the new ones.
    next((out / ".methbuild-export").glob("MetH-Test-train-000002.tar.json")).unlink()
    proc = _export(src, "--to", "webdataset", "--out", out, "--shard-size", 100)
    assert sorted(p.name for p in out.glob("*.tar")) == [
        "MetH-Test-test-000000.tar", "MetH-Test-train-000000.tar", "MetH-Test-validation-000000.tar"]


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    from methbuild.io.lock import folder_lock

    src = make_meth(tmp_path)
    out = tmp_path / "wds"
    with folder_lock(out, "another export"):
        assert_user_error(_export(src, "--to", "webdataset", "--out", out, ok=False), "in use")
