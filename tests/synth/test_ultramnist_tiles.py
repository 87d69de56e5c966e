"""UltraMNIST beyond memory (band-by-band rendering into tiled pyramids) and `--only` regeneration."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from methbuild.synth import ultramnist as um
from methbuild.synth.mnist import load_pool
from tests.conftest import assert_user_error, run_cli

pyvips = pytest.importorskip("pyvips")


def _ids(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return [r["id"] for r in csv.DictReader(fh)]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _level0(path: Path) -> np.ndarray:
    im = pyvips.Image.new_from_file(str(path), page=0, access="sequential")
    return np.ndarray(buffer=im.write_to_memory(), dtype=np.uint8, shape=(im.height, im.width))


def test_nearest_rows_is_opencv_nearest_resize():
    glyph = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    for side in list(range(1, 400)) + [um.side_of(r, False, 4000) for r in range(1, 77)] + [4013, 5321]:
        idx = um.nearest_rows(side)
        assert (glyph[idx][:, idx] == cv2.resize(glyph, (side, side), interpolation=cv2.INTER_NEAREST)).all(), side


@pytest.mark.parametrize("board,height", [("checker", None), ("random", None), ("checker", 700), ("random", 2100)])
def test_bands_equal_the_in_memory_render(board: str, height: int | None):
    size = 1300  # not a multiple of the band height: the last band is partial
    tall = height or size
    pool = load_pool(None, "train")
    for index in range(3):
        digits = um.plan_digits(5, "train", index, 11 + index, size, pool.indices_by_label(), pool.source_index, height)
        bg, rng = um.plan_background(5, "train", index, size, board, height)
        whole = um.render(digits, pool.images, bg, size, rng, height)
        assert whole.shape == (tall, size)
        bg, rng = um.plan_background(5, "train", index, size, board, height)
        board_img, m = um._board_image(bg, size, rng, height)
        bands = np.empty((tall, size), np.uint8)
        for y0 in range(0, tall, um.BAND_ROWS):
            y1 = min(y0 + um.BAND_ROWS, tall)
            um.render_band(digits, pool.images, bg, size, board_img, m, y0, y1, bands[y0:y1])
        assert (bands == whole).all()


def test_non_square_canvas_scales_digits_with_the_shorter_side(tmp_path: Path):
    out = tmp_path / "wide"
    proc = run_cli("ultramnist", "--n", 28, "--width", 1500, "--height", 600, "--split", "train", "--format", "png",
                   "--out", out, "--workers", 2)
    assert proc.returncode == 0, proc.stderr
    with open(out / "train_digits.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    short = 600
    assert all(int(r["x"]) + int(r["side"]) <= 1500 and int(r["y"]) + int(r["side"]) <= 600 for r in rows)
    assert max(int(r["side"]) for r in rows) <= um.side_of(76, False, short)
    assert any(int(r["x"]) + int(r["side"]) > 700 for r in rows)  # the width is used, not just a 600² corner
    for image_id in _ids(out / "train.csv")[:3]:
        with Image.open(out / "train" / f"{image_id}.png") as im:
            assert im.size == (1500, 600)
    wanted = _ids(out / "train.csv")[5]
    again = tmp_path / "again"
    proc = run_cli("ultramnist", "--n", 28, "--width", 1500, "--height", 600, "--split", "train", "--format",
                   "tiff-deflate", "--out", again, "--only", wanted)
    assert proc.returncode == 0, proc.stderr
    expect = np.asarray(Image.open(out / "train" / f"{wanted}.png"))
    assert (_level0(again / "train" / f"{wanted}.tif") == expect).all()
    assert_user_error(run_cli("ultramnist", "--width", 1500, "--height", 600, "--preview", "--out", tmp_path / "p"),
                      "square")


def test_tiff_full_resolution_level_equals_the_png_at_4000(tmp_path: Path):
    args = ("ultramnist", "--n", 1, "--size", 4000, "--split", "train", "--seed", 9, "--workers", 1)
    png, tif, jpg_tif, dz = (tmp_path / k for k in ("png", "tif", "jpgtif", "dz"))
    for out, fmt in ((png, "png"), (tif, "tiff-deflate"), (jpg_tif, "tiff"), (dz, "dz")):
        proc = run_cli(*args, "--format", fmt, "--out", out)
        assert proc.returncode == 0, proc.stderr
    ids = _ids(png / "train.csv")
    assert ids == _ids(tif / "train.csv") and (png / "train_digits.csv").read_text() == (tif / "train_digits.csv").read_text()
    for image_id in ids:
        expect = np.asarray(Image.open(png / "train" / f"{image_id}.png"))
        assert (_level0(tif / "train" / f"{image_id}.tif") == expect).all()  # lossless tiles: identical pixels
        lossy = _level0(jpg_tif / "train" / f"{image_id}.tif").astype(int)
        assert lossy.shape == expect.shape and np.abs(lossy - expect).mean() < 12  # JPEG tiles: close
        im = pyvips.Image.new_from_file(str(tif / "train" / f"{image_id}.tif"))
        assert im.get("n-pages") >= 5  # 4000, 2000, 1000, 500, 250, ...
        dzi = (dz / "train" / f"{image_id}.dzi").read_text()
        assert re.search(r'Width="4000"', dzi) and re.search(r'Height="4000"', dzi)
        top = max(int(p.name) for p in (dz / "train" / f"{image_id}_files").iterdir() if p.name.isdigit())
        assert top == 12  # ceil(log2(4000)): the full-resolution level
        with Image.open(dz / "train" / f"{image_id}_files" / str(top) / "0_0.jpeg") as tile:
            assert tile.size == (256, 256)
    assert not list((dz / "train").glob(".*tmp*"))


def test_only_regenerates_single_images_byte_identical(tmp_path: Path):
    full, single = tmp_path / "full", tmp_path / "single"
    args = ("ultramnist", "--n", 30, "--size", 512, "--seed", 4)
    assert run_cli(*args, "--out", full, "--workers", 2).returncode == 0
    train, test = _ids(full / "train.csv"), _ids(full / "test.csv")
    wanted = [train[7], train[21], test[3]]
    proc = run_cli(*args, "--out", single, "--only", f"{wanted[0]},{wanted[1]}", "--only", wanted[2])
    assert proc.returncode == 0, proc.stderr
    assert "regenerated 3 image(s)" in proc.stdout
    made = sorted(p.relative_to(single) for p in single.rglob("*.jpeg"))
    assert made == sorted([Path("train") / f"{wanted[0]}.jpeg", Path("train") / f"{wanted[1]}.jpeg",
                           Path("test") / f"{wanted[2]}.jpeg"])
    for rel in made:
        assert _sha(single / rel) == _sha(full / rel)
    assert not (single / "train.csv").exists()  # tables are the full run's business
    # in the full run's folder: a damaged image is replaced by the same bytes
    target = full / "train" / f"{wanted[0]}.jpeg"
    before = _sha(target)
    target.write_bytes(b"broken")
    assert run_cli(*args, "--out", full, "--only", wanted[0]).returncode == 0
    assert _sha(target) == before
    assert_user_error(run_cli(*args, "--out", single, "--only", "bzzzzzzzzz"), "--only", "bzzzzzzzzz")
    assert_user_error(run_cli(*args, "--out", single, "--only", "../etc"), "--only")
    assert_user_error(run_cli("ultramnist", "--n", 31, "--size", 512, "--seed", 4, "--out", single,
                              "--only", wanted[0]), "other arguments")


def test_size_limits_follow_the_format(tmp_path: Path):
    out = tmp_path / "x"
    assert_user_error(run_cli("ultramnist", "--size", 20000, "--n", 1, "--out", out), "--size", "tiff")
    assert_user_error(run_cli("ultramnist", "--size", 100001, "--format", "tiff", "--out", out), "--size")
    assert_user_error(run_cli("ultramnist", "--size", 1024, "--format", "dz", "--preview", "--out", out), "--preview")


def test_png_stream_with_rows_cut_into_several_stored_blocks(monkeypatch):
    """Rows wider than one stored DEFLATE block (64 KiB: sides above 65,534) are cut; same pixels."""
    import io

    monkeypatch.setattr(um, "STORED_MAX", 700)  # a row (1 + 1300 bytes) becomes blocks of 700, 601
    size = 1300
    pool = load_pool(None, "test")
    digits = um.plan_digits(1, "test", 2, 20, size, pool.indices_by_label(), pool.source_index)
    bg, rng = um.plan_background(1, "test", 2, size, "random")
    whole = um.render(digits, pool.images, bg, size, rng)
    bg, rng = um.plan_background(1, "test", 2, size, "random")
    data = b"".join(bytes(piece) for piece in um.banded_png_stream(digits, pool.images, bg, size, rng))
    assert (np.asarray(Image.open(io.BytesIO(data))) == whole).all()
