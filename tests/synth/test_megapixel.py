"""Megapixel MNIST through the command a user types, and its parts against independent references."""

from __future__ import annotations

import csv
import hashlib
import json
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from methbuild.io.lock import folder_lock
from methbuild.synth import megapixel as mp
from methbuild.synth import sparse_png
from methbuild.synth.mnist import load_pool
from tests.conftest import assert_user_error, run_cli

W, H = 400, 300
ARGS = ("megapixel-mnist", "--n-train", 16, "--n-test", 6, "--width", W, "--height", H, "--noise-patches", 120,
        "--seed", 3)
NOT_CONTENT = ("summary.json", "croissant.json", "preview.png", ".methbuild.lock")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in NOT_CONTENT}


def _pool_by_source(split: str):
    pool = load_pool(None, split)
    return pool, {int(s): i for i, s in enumerate(pool.source_index)}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mpm") / "set"
    proc = run_cli(*ARGS, "--out", out, "--workers", 2, "--preview")
    assert proc.returncode == 0, proc.stderr
    assert "train: 16 images (16 rendered" in proc.stdout and "test: 6 images (6 rendered" in proc.stdout
    return out


def test_tables_files_and_boxes(small_set: Path):
    for split, n in (("train", 16), ("test", 6)):
        labels = _rows(small_set / f"{split}.csv")
        digits = _rows(small_set / f"{split}_digits.csv")
        assert list(labels[0]) == ["id", "label"] and len(labels) == n
        assert list(digits[0]) == list(mp.DIGIT_COLUMNS) and len(digits) == 5 * n
        for row in labels:
            ds = [d for d in digits if d["id"] == row["id"]]
            assert [int(d["is_target"]) for d in ds] == [1, 1, 1, 0, 0]
            assert all(int(d["digit"]) == int(row["label"]) for d in ds[:3])
            assert all(int(d["digit"]) != int(row["label"]) for d in ds[3:])
            boxes = [(int(d["x"]), int(d["y"])) for d in ds]
            for x, y in boxes:
                assert 0 <= x <= W - 28 and 0 <= y <= H - 28
            for i, (x1, y1) in enumerate(boxes):
                for x2, y2 in boxes[i + 1:]:
                    assert abs(x1 - x2) >= 28 or abs(y1 - y2) >= 28  # no shared pixel
            with Image.open(small_set / split / f"{row['id']}.png") as im:
                assert (im.format, im.mode, im.size) == ("PNG", "L", (W, H))
            with Image.open(small_set / f"{split}_low" / f"{row['id']}.png") as im:
                assert (im.mode, im.size) == ("L", (int(W * 0.12), int(H * 0.12)))
    train = {int(d["mnist_index"]) for d in _rows(small_set / "train_digits.csv")}
    test = {int(d["mnist_index"]) for d in _rows(small_set / "test_digits.csv")}
    assert train and test and not train & test
    summary = json.loads((small_set / "summary.json").read_text())
    assert sum(summary["splits"]["train"]["class_counts"]) == 16
    assert summary["arguments"]["paint_order"] == "digits-first" and summary["arguments"]["noise_patches"] == 120
    with Image.open(small_set / "preview.png") as im:
        assert im.width > 600


def test_pixels_are_mnist_digits_and_noise_erases_only_what_the_table_says(small_set: Path):
    pool, where = _pool_by_source("train")
    erased_total = 0
    for row in _rows(small_set / "train.csv"):
        img = np.asarray(Image.open(small_set / "train" / f"{row['id']}.png"))
        for d in (d for d in _rows(small_set / "train_digits.csv") if d["id"] == row["id"]):
            glyph = pool.images[where[int(d["mnist_index"])]]
            x, y = int(d["x"]), int(d["y"])
            crop = img[y: y + 28, x: x + 28]
            changed = int(np.count_nonzero(crop != glyph))
            strokes_changed = int(np.count_nonzero((crop != glyph) & (glyph > 0)))
            assert changed <= int(d["covered_pixels"])  # only noise blocks change a digit's box
            assert strokes_changed <= int(d["erased_pixels"]) <= int(d["covered_pixels"])
            if int(d["covered_pixels"]) == 0:
                assert changed == 0  # an untouched digit is MNIST's, pixel for pixel
            erased_total += int(d["erased_pixels"])
        # everything outside digits and noise is black, and noise is 204..255 or 0
        assert set(np.unique(img).tolist()) <= set(range(256))
    s = json.loads((small_set / "summary.json").read_text())["splits"]["train"]
    assert erased_total == s["erased_digit_pixels"] > 0  # 120 patches on 400x300: noise does erase
    assert s["images_with_erased_digits"] <= s["images_with_digit_box_under_noise"] <= 16


def test_png_equals_the_dense_composition_of_the_patches(small_set: Path):
    cfg = mp.Config(mp.Preset(width=W, height=H, n_train=16, n_test=6, noise_patches=120))
    pool = load_pool(None, "test")
    for i in range(6):
        plan = mp.plan_image(3, "test", i, cfg, pool)
        high, low = mp.render(plan, pool, mp.noise_bank(3, "test", cfg), cfg)
        img = np.asarray(Image.open(small_set / "test" / f"{mp.image_id(i, 6)}.png"))
        assert (img == sparse_png.compose(H, W, high)).all()
        lo = np.asarray(Image.open(small_set / "test_low" / f"{mp.image_id(i, 6)}.png"))
        assert (lo == sparse_png.compose(*cfg.low_shape, low)).all()
        noise_values = np.unique(mp.noise_bank(3, "test", cfg)[0])
        assert noise_values.min() == 0 and set(noise_values[1:].tolist()) <= set(range(204, 256))


def test_croissant_validates_without_warnings(small_set: Path):
    mlc = pytest.importorskip("mlcroissant")
    ctx = mlc.Context()
    mlc.Metadata.from_file(ctx, small_set / "croissant.json")
    assert not ctx.issues.errors and not ctx.issues.warnings
    ds = mlc.Dataset(jsonld=small_set / "croissant.json")
    images = list(ds.records("test_low_files"))
    assert len(images) == 6 and images[0]["test_low_files/image"].size == (int(W * 0.12), int(H * 0.12))
    assert [r["train/label"] for r in ds.records("train")] == [int(r["label"]) for r in _rows(small_set / "train.csv")]


def test_same_bytes_with_any_worker_count_and_after_resume(small_set: Path, tmp_path: Path):
    other = tmp_path / "one-worker"
    proc = run_cli(*ARGS, "--out", other, "--workers", 1)
    assert proc.returncode == 0, proc.stderr
    assert _hashes(other) == _hashes(small_set)
    (other / "train" / "00003.png").unlink()
    (other / "test_low" / "00001.png").unlink()
    (other / "train_digits.csv").unlink()
    proc = run_cli(*ARGS, "--out", other, "--workers", 2)
    assert proc.returncode == 0, proc.stderr
    assert "train: 16 images (1 rendered, 15 already complete" in proc.stdout
    assert "test: 6 images (1 rendered, 5 already complete" in proc.stdout
    assert _hashes(other) == _hashes(small_set)


def test_dask_gives_the_same_bytes(small_set: Path, tmp_path: Path):
    pytest.importorskip("dask.distributed")
    out = tmp_path / "dask"
    proc = run_cli(*ARGS, "--split", "test", "--out", out, "--scheduler", "local:2")
    assert proc.returncode == 0, proc.stderr
    ours = _hashes(out)
    assert ours and all(ours[k] == _hashes(small_set)[k] for k in ours)


def test_noise_first_never_erases_a_digit(tmp_path: Path):
    out = tmp_path / "ips"
    proc = run_cli(*ARGS, "--split", "train", "--n-train", 8, "--paint-order", "noise-first", "--out", out)
    assert proc.returncode == 0, proc.stderr
    s = json.loads((out / "summary.json").read_text())["splits"]["train"]
    assert s["images_with_digit_box_under_noise"] == 0 and s["erased_digit_pixels"] == 0
    pool, where = _pool_by_source("train")
    for d in _rows(out / "train_digits.csv"):
        img = np.asarray(Image.open(out / "train" / f"{d['id']}.png"))
        x, y = int(d["x"]), int(d["y"])
        assert (img[y: y + 28, x: x + 28] == pool.images[where[int(d["mnist_index"])]]).all()


def _flip_kinds(original: bool) -> set[str]:
    a, b, _ = mp.noise_lines(0, "train", mp.Config(original_flips=original))
    kinds = set()
    for pattern in b:
        forms = {"none": [pattern], "up-down": [np.flip(pattern, 0)], "left-right": [np.flip(pattern, 1)],
                 "both": [np.flip(pattern, (0, 1))]}
        match = [k for k, (f,) in forms.items() if any((f == line).all() for line in a)]
        assert match  # B is A shuffled and flipped
        kinds.add(match[0] if len(match) == 1 else "ambiguous")
    return kinds


def test_the_flip_bug_is_fixed_by_default_and_reproducible():
    assert {"up-down", "both"} & _flip_kinds(False)  # the second line is flipped on both axes
    assert not {"up-down", "both"} & _flip_kinds(True)  # the original flips the same axis twice
    noisy = mp.noise_bank(0, "train", mp.Config())[0]
    assert noisy.shape == (50, 28, 28) and all((p > 0).any() for p in noisy)


def test_low_resolution_patch_is_skimage_rescale():
    """The original's low view: skimage rescale(order=1, mode="constant", anti_aliasing=True) per patch."""
    ndi = pytest.importorskip("scipy.ndimage")
    pool = load_pool(None, "train")
    patches = pool.images[:40].astype(np.float32) / np.float32(255)
    ours = mp.downsample_patches(patches, 3)
    sigma = (28 / 3 - 1) / 2
    for p, got in zip(patches, ours):
        blurred = ndi.gaussian_filter(p, sigma, mode="constant", cval=0)
        ref = ndi.zoom(blurred.astype(np.float64), 3 / 28, order=1, mode="grid-constant", grid_mode=True)
        expect = (255 * np.clip(ref, blurred.min(), blurred.max())).astype(np.uint8)
        assert got.shape == (3, 3) and np.abs(got.astype(int) - expect).max() <= 1
    assert ours.max() > 0


def test_sparse_png_at_twenty_thousand_pixels_follows_content():
    rng = np.random.default_rng(5)
    h, w = 20_000, 12_000
    patches = [(int(rng.integers(-10, h)), int(rng.integers(-10, w)), rng.integers(1, 256, (28, 28), dtype=np.uint8))
               for _ in range(40)]
    t0 = time.perf_counter()
    data = sparse_png.encode(h, w, patches)
    assert time.perf_counter() - t0 < 2.0  # a dense zlib pass over these 240 MB alone takes longer
    assert data[:8] == sparse_png.PNG_SIGNATURE and data[16:24] == np.array([w, h], ">u4").tobytes()
    idat_len = int.from_bytes(data[33:37], "big")
    assert data[37:41] == b"IDAT"
    stream = zlib.decompressobj()
    clipped = sparse_png.clip_patches(h, w, patches)
    rows_done, pending = 0, b""
    chunk = data[41: 41 + idat_len]
    for start in range(0, len(chunk), 1 << 16):
        pending += stream.decompress(chunk[start: start + (1 << 16)])
        n = len(pending) // (w + 1)
        if n:
            block = np.frombuffer(pending[: n * (w + 1)], np.uint8).reshape(n, w + 1)
            pending = pending[n * (w + 1):]
            assert not block[:, 0].any()  # filter type 0
            expect = sparse_png.compose(n, w, [(y - rows_done, x, b) for y, x, b in clipped
                                               if y < rows_done + n and y + b.shape[0] > rows_done])
            assert (block[:, 1:] == expect).all()
            rows_done += n
    assert stream.eof and not pending and rows_done == h  # zlib checks the Adler-32 at the end


def test_bad_arguments_are_one_line_errors(tmp_path: Path):
    out = tmp_path / "x"
    assert_user_error(run_cli("megapixel-mnist", "--width", 100, "--out", out), "--width")
    assert_user_error(run_cli("megapixel-mnist", "--scale", "nan", "--out", out), "--scale")
    assert_user_error(run_cli("megapixel-mnist", "--scale", 0.01, "--out", out), "--scale")
    assert_user_error(run_cli("megapixel-mnist", "--seed", -1, "--out", out), "--seed")
    assert_user_error(run_cli("megapixel-mnist", "--paint-order", "sideways", "--out", out), "--paint-order")
    assert_user_error(run_cli("megapixel-mnist", "--n-train", 0, "--split", "train", "--out", out), "nothing")
    assert_user_error(run_cli("megapixel-mnist", "--target-digits", 20, "--other-digits", 20, "--width", 256,
                              "--height", 256, "--out", out), "fit")
    assert not out.exists()


def test_other_arguments_in_the_same_folder_and_a_busy_folder_are_refused(small_set: Path, tmp_path: Path):
    assert_user_error(run_cli(*ARGS, "--seed", 4, "--out", small_set), "other arguments", "seed")
    busy = tmp_path / "busy"
    with folder_lock(busy, command="test holder"):
        assert_user_error(run_cli(*ARGS, "--out", busy), "in use", "test holder")


def test_help_has_text():
    proc = run_cli("megapixel-mnist", "--help")
    assert proc.returncode == 0 and "--paint-order" in proc.stdout and "--original-flips" in proc.stdout
    assert "megapixel-mnist" in run_cli("--help").stdout
