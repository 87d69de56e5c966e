"""`methbuild downsample`: the published batch format, end to end, on a tiny ImageNet-like tree."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from methbuild.downsample import METHODS, Options, build
from methbuild.downsample.resize import square
from methbuild.io.imagenet_batches import all_file_names, read_batch
from methbuild.io.lock import LOCK_NAME
from tests.conftest import REPO, assert_user_error, run_cli
from tests.downsample.imagenet_tree import MAP_CLSLOC, WNIDS, make_tree

TRAIN = [f"train_data_batch_{k}" for k in range(1, 11)]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    info = make_tree(root / "src")
    (root / "map_clsloc.txt").write_text(MAP_CLSLOC)
    info.update(src=root / "src", synsets=root / "map_clsloc.txt")
    return info


def unpickle(path: Path) -> dict:
    """The paper's loader: plain pickle.load."""
    with open(path, "rb") as fo:
        return pickle.load(fo)


def load_split(out: Path, size: int, fmt: str = "pickle"):
    """Train and val as the published loaders see them: N×3×S×S arrays and 1-based labels."""
    names = all_file_names(fmt)
    batches = [read_batch(out / n) if fmt == "npz" else unpickle(out / n) for n in names]
    for b in batches:
        assert b["data"].dtype == np.uint8 and b["data"].shape[1] == 3 * size * size
        assert isinstance(b["labels"], list) and all(type(v) is int for v in b["labels"])
    return batches[:10], batches[10]


def exact_rows(src: Path, rels, size: int, method: str) -> dict[bytes, str]:
    rows = {}
    for rel in rels:
        with Image.open(src / rel) as im:
            img = np.asarray(im.convert("RGB").resize((size, size), METHODS[method]))
        rows[img.transpose(2, 0, 1).tobytes()] = rel
    return rows


def good_files(tree, split):
    return [(rel, w) for rel, w in tree["files"][split] if rel != tree["truncated"]]


def test_cli_end_to_end_pickle_exact(tree, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("downsample", tree["src"], "--size", "16", "--out", out, "--exact", "--synsets", tree["synsets"],
                   "--workers", "2", "--seed", "3", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "truncated" in proc.stderr and "1 unreadable file(s) skipped" in proc.stderr
    assert "train: 21 images in 10 batches (2 × 9 + 3), 1 skipped" in proc.stdout
    assert "1 JPEG/CMYK" in proc.stdout and "1 JPEG/L" in proc.stdout and "2 PNG/RGB" in proc.stdout
    assert sorted(n for n in os.listdir(out) if n != LOCK_NAME) == sorted(all_file_names("pickle") + ["downsample.json"])

    train, val = load_split(out, 16)
    label_of = {"n02119789": 1, "n01443537": 2, "n01440764": 3}  # map_clsloc order, not sorted order
    # batches 1–9 hold n // 10 rows, batch 10 the rest; every train batch carries the same mean
    assert [len(b["labels"]) for b in train] == [2] * 9 + [3]
    data = np.concatenate([b["data"] for b in train])
    labels = sum((b["labels"] for b in train), [])
    mean = train[0]["mean"]
    assert mean.dtype == np.float64 and mean.shape == (768,)
    for b in train:
        assert np.array_equal(b["mean"], mean)
    np.testing.assert_allclose(mean, data.mean(axis=0), rtol=0, atol=1e-9)
    assert "mean" not in val

    # the loader's reshape gives images; each row is exactly Pillow's output for one source file
    images = data.reshape(-1, 3, 16, 16)
    assert images.shape == (21, 3, 16, 16)
    expected = exact_rows(tree["src"], [r for r, _ in good_files(tree, "train")], 16, "box")
    seen = [expected[row.tobytes()] for row in data]  # KeyError if a row is not an exact Pillow image
    assert sorted(seen) == sorted(expected.values())
    wnid_of = dict(tree["files"]["train"])
    assert labels == [label_of[wnid_of[rel]] for rel in seen]
    assert labels != sorted(labels)  # shuffled

    # val keeps file-name order (the official validation order), labels 1-based from the map
    vexp = sorted(good_files(tree, "val"), key=lambda r: Path(r[0]).name)
    vrows = exact_rows(tree["src"], [r for r, _ in vexp], 16, "box")
    assert [vrows[row.tobytes()] for row in val["data"]] == [r for r, _ in vexp]
    assert val["labels"] == [label_of[w] for _, w in vexp]

    summary = json.loads((out / "downsample.json").read_text())
    assert [s["file"] for s in summary["skipped"]] == [tree["truncated"]]

    # the output does not depend on the worker count: a one-process build is byte-identical
    out1 = tmp_path / "out1"
    build(Options(src=tree["src"], out=out1, size=16, exact=True, synsets=tree["synsets"], seed=3, workers=1,
                  progress=False))
    for name in all_file_names("pickle"):
        assert (out / name).read_bytes() == (out1 / name).read_bytes(), name
    # another seed: another order of the same rows
    out2 = tmp_path / "out2"
    build(Options(src=tree["src"], out=out2, size=16, exact=True, synsets=tree["synsets"], seed=4, workers=1,
                  progress=False))
    data2 = np.concatenate([b["data"] for b in load_split(out2, 16)[0]])
    assert not np.array_equal(data, data2)
    assert sorted(map(bytes, data)) == sorted(map(bytes, data2))

    # a rerun finds the job done and touches nothing
    before = {n: (out / n).stat().st_mtime_ns for n in os.listdir(out) if n != LOCK_NAME}
    proc = run_cli("downsample", tree["src"], "--size", "16", "--out", out, "--exact", "--synsets", tree["synsets"],
                   "--seed", "3", "--quiet")
    assert proc.returncode == 0 and "already complete" in proc.stdout, proc.stdout + proc.stderr
    assert before == {n: (out / n).stat().st_mtime_ns for n in os.listdir(out) if n != LOCK_NAME}


@pytest.mark.parametrize("method", list(METHODS))
def test_exact_mode_equals_pillow_for_every_method(tree, tmp_path, method):
    out = tmp_path / method
    build(Options(src=tree["src"], out=out, size=32, method=method, exact=True, workers=1, progress=False))
    train, val = load_split(out, 32)
    data = np.concatenate([b["data"] for b in train] + [val["data"]])
    expected = exact_rows(tree["src"], [r for r, _ in good_files(tree, "train") + good_files(tree, "val")], 32, method)
    assert sorted(map(bytes, data)) == sorted(expected)
    # without --synsets the labels are the sorted wnids from 1
    wnid_of = dict(tree["files"]["val"])
    assert val["labels"] == [WNIDS.index(wnid_of[expected[row.tobytes()]]) + 1 for row in val["data"]]


def test_fast_mode_is_close_to_exact_and_identical_for_non_jpeg(tree, tmp_path):
    rels = [r for r, _ in good_files(tree, "train")]
    errs = []
    for rel in rels:
        path = str(tree["src"] / rel)
        exact, kind = square(path, 32, "box", exact=True)
        fast, _ = square(path, 32, "box", exact=False, draft=2)
        assert fast.shape == exact.shape == (32, 32, 3)
        err = np.abs(fast.astype(int) - exact.astype(int))
        if kind.startswith("PNG"):
            assert err.max() == 0  # no shrink-on-load outside JPEG
        errs.append(err.mean())
        # a draft factor too large to allow any shrink gives the exact pixels
        huge, _ = square(path, 32, "box", exact=False, draft=20)
        assert np.array_equal(huge, exact)
    assert 0 < np.mean(errs) < 4  # measured figures per method and size: benchmarks/bench_downsample.py


def test_npz_format_holds_the_same_arrays(tree, tmp_path):
    build(Options(src=tree["src"], out=tmp_path / "p", size=16, workers=1, progress=False))
    build(Options(src=tree["src"], out=tmp_path / "z", size=16, fmt="npz", workers=1, progress=False))
    tp, vp = load_split(tmp_path / "p", 16)
    tz, vz = load_split(tmp_path / "z", 16, fmt="npz")
    for a, b in zip(tp + [vp], tz + [vz]):
        assert np.array_equal(a["data"], b["data"]) and a["labels"] == b["labels"]
    assert np.array_equal(tp[3]["mean"], tz[3]["mean"])
    with np.load(tmp_path / "z" / "train_data_batch_1.npz") as z:
        assert sorted(z.files) == ["data", "labels", "mean"]


def test_pickles_load_on_any_numpy():
    """The array constructor is named by the path NumPy 1.x and 2.x both resolve."""
    from methbuild.io.imagenet_batches import _BatchPickler  # noqa: PLC0415
    import io  # noqa: PLC0415

    buf = io.BytesIO()
    _BatchPickler(buf, protocol=4).dump({"data": np.arange(12, dtype=np.uint8).reshape(2, 6), "labels": [1, 2]})
    assert b"numpy.core.multiarray" in buf.getvalue() and b"numpy._core" not in buf.getvalue()
    import warnings  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy 2 resolves the old name without a deprecation warning
        d = pickle.loads(buf.getvalue())
    assert d["data"].flags.writeable and d["data"].tolist() == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]


def big_tree(root: Path, n_train: int, n_val: int) -> None:
    """Large JPEGs (slow to decode, so a run can be interrupted), cheap to make: shifts of one photo."""
    from tests.downsample.imagenet_tree import photo  # noqa: PLC0415

    base = photo(np.random.default_rng(5), 1600, 1200)
    for split, n in (("train", n_train), ("val", n_val)):
        for k in range(n):
            d = root / split / WNIDS[k % 3]
            d.mkdir(parents=True, exist_ok=True)
            img = np.roll(base, (37 * k, 53 * k), axis=(0, 1))
            Image.fromarray(img).save(d / f"{split}_{k:03d}.JPEG", "JPEG", quality=85)


def test_interrupted_run_resumes_to_the_same_output(tmp_path):
    src = tmp_path / "src"
    big_tree(src, 60, 12)
    out = tmp_path / "out"
    args = ["-m", "methbuild", "downsample", str(src), "--size", "32", "--out", str(out), "--exact",
            "--workers", "1", "--chunk-size", "2", "--quiet"]
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = out / ".downsample-work" / "progress.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and '"chunk"' in log.read_text():  # some chunks durable (flushed every second)
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be interrupted"
    assert not (out / "val_data").exists() and not (out / "downsample.json").exists()
    assert not (out / "train_data_batch_1").exists()  # batches only once every image is resized

    resumed = run_cli(*args[2:])
    assert resumed.returncode == 0, resumed.stderr
    assert "(resumed)" in resumed.stdout
    assert 0 < json.loads((out / "downsample.json").read_text())["images_resized"] < 72  # not all redone
    assert not (out / ".downsample-work").exists()
    assert not [n for n in os.listdir(out) if ".tmp-" in n]
    clean = tmp_path / "clean"
    build(Options(src=src, out=clean, size=32, exact=True, workers=1, progress=False))
    for name in all_file_names("pickle"):
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name


def test_bad_inputs_are_one_line_errors(tree, tmp_path):
    src = str(tree["src"])
    out = str(tmp_path / "o")
    assert_user_error(run_cli("downsample", tmp_path, "--size", "32", "--out", out), "train/")
    assert_user_error(run_cli("downsample", src, "--size", "48", "--out", out), "48")
    assert_user_error(run_cli("downsample", src, "--size", "32", "--out", out, "--method", "area"), "area")
    assert_user_error(run_cli("downsample", tmp_path / "nope", "--size", "32", "--out", out), "nope")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_user_error(run_cli("downsample", src, "--size", "32", "--out", blocker), "is a file")
    assert_user_error(run_cli("downsample", src, "--size", "32", "--out", blocker / "sub"), "cannot write")

    # validation images not yet sorted into class folders
    flat = tmp_path / "flat"
    (flat / "train" / "n01440764").mkdir(parents=True)
    (flat / "val").mkdir()
    (flat / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"x")
    assert_user_error(run_cli("downsample", flat, "--size", "16", "--out", out), "class folders")

    # a class folder the synsets file does not know; a malformed synsets file
    partial = tmp_path / "partial.txt"
    partial.write_text("n01440764 1 tench\nn01443537 2 goldfish\n")
    assert_user_error(run_cli("downsample", src, "--size", "16", "--out", out, "--synsets", partial), "n02119789")
    dup = tmp_path / "dup.txt"
    dup.write_text("n01440764 1 tench\nn01443537 1 goldfish\nn02119789 3 kit_fox\n")
    assert_user_error(run_cli("downsample", src, "--size", "16", "--out", out, "--synsets", dup), "index 1")
    assert not Path(out).exists() or not os.listdir(out)


def test_help():
    proc = run_cli("downsample", "--help")
    assert proc.returncode == 0 and "--exact" in proc.stdout and "map_clsloc" in proc.stdout


def test_synsets_formats(tmp_path):
    from methbuild.downsample import read_synsets  # noqa: PLC0415

    clsloc = tmp_path / "map_clsloc.txt"
    clsloc.write_text(MAP_CLSLOC)
    assert read_synsets(clsloc) == {"n02119789": 1, "n01443537": 2, "n01440764": 3}
    loc = tmp_path / "LOC_synset_mapping.txt"  # 'wnid name, name' lines: label = line number
    loc.write_text("n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n\nn02119789 kit fox\n")
    assert read_synsets(loc) == {"n01440764": 1, "n01443537": 2, "n02119789": 3}


def test_train_only_source(tmp_path):
    src = tmp_path / "src"
    make_tree(src, n_train=4, n_val=0, oddities=False, size=(120, 90))
    for d in (src / "val").iterdir():
        d.rmdir()
    (src / "val").rmdir()
    s = build(Options(src=src, out=tmp_path / "out", size=16, workers=1, progress=False))
    assert "val" not in s["splits"] and s["splits"]["train"]["images"] == 12
    assert sorted(n for n in os.listdir(tmp_path / "out") if n != LOCK_NAME) == sorted(TRAIN + ["downsample.json"])


def test_fewer_than_ten_train_images_fill_batch_ten(tmp_path):
    src = tmp_path / "src"
    make_tree(src, n_train=1, n_val=1, oddities=False, size=(120, 90))  # 3 train images
    out = tmp_path / "out"
    build(Options(src=src, out=out, size=16, workers=1, progress=False))
    train, val = load_split(out, 16)
    assert [len(b["labels"]) for b in train] == [0] * 9 + [3]
    assert train[0]["data"].shape == (0, 768) and np.array_equal(train[0]["mean"], train[9]["data"].mean(axis=0))
    assert len(val["labels"]) == 3
