"""`methbuild sr pairs`: GT/ and LRbicx<s>/ with LR·s = HR exactly, MATLAB-bicubic from one decode."""

from __future__ import annotations

import csv

import numpy as np
import pyvips

from methbuild.lowres import bicubic_pyramid
from methbuild.sr.pairs import write_pairs
from tests.conftest import assert_user_error, run_cli
from tests.sr.helpers import SIZES, basicsr_folder_pairs, image_folder, read


def test_every_pair_is_exactly_s_times_and_gt_is_the_cropped_source(tmp_path):
    src = image_folder(tmp_path / "src")
    out = tmp_path / "pairs"
    proc = run_cli("sr", "pairs", src, "--out", out, "--scales", "2", "3", "--workers", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "3 images: 3 done, 0 failed" in proc.stdout
    rows = list(csv.DictReader(open(out / "pairs.csv", encoding="utf-8")))
    assert [r["status"] for r in rows] == ["written"] * 3
    meta = (out / "meta_info.txt").read_text().splitlines()
    for i, (w, h) in enumerate(SIZES):
        stem = f"im{i}"
        gt = read(out / "GT" / f"{stem}.png")
        cw, ch = w - w % 6, h - h % 6  # lcm(2, 3) = 6, anchored top-left
        assert gt.shape[:2] == (ch, cw)
        row = next(r for r in rows if r["stem"] == stem)
        assert (row["crop_left"], row["crop_top"], row["crop_width"], row["crop_height"]) == ("0", "0", str(cw), str(ch))
        source = read(src / f"{stem}.png")
        assert np.array_equal(gt, source[:ch, :cw])  # lossless, the same decode
        assert f"{stem}.png ({ch},{cw},{gt.shape[2]})" in meta
        expected = bicubic_pyramid(pyvips.Image.new_from_file(str(src / f"{stem}.png")), (2, 3), 6)
        for s in (2, 3):
            lr = read(out / f"LRbicx{s}" / f"{stem}.png")
            assert lr.shape[0] * s == gt.shape[0] and lr.shape[1] * s == gt.shape[1]  # LR·s = HR
            assert lr.shape[2] == gt.shape[2]
            ref = expected[s].numpy().reshape(lr.shape)
            assert np.array_equal(lr, ref)  # the lowres MATLAB-bicubic pixels
    for s in (2, 3):  # BasicSR's folder pairing: only the images in the folders, the same names
        pairs = basicsr_folder_pairs(out / "GT", out / f"LRbicx{s}")
        assert [g for g, _ in pairs] == ["im0.png", "im1.png", "im2.png"]


def test_rerun_keeps_finished_pairs_and_api_default_scales(tmp_path):
    src = image_folder(tmp_path / "src", sizes=[(70, 50)], grey_last=False)
    out = tmp_path / "pairs"
    first = write_pairs([src / "im0.png"], out, progress=False)
    assert (first.done, first.failed) == (1, 0)
    assert read(out / "GT" / "im0.png").shape[:2] == (48, 64)  # lcm(2, 4, 8, 16) = 16
    assert read(out / "LRbicx16" / "im0.png").shape[:2] == (3, 4)
    again = write_pairs([src / "im0.png"], out, progress=False)
    assert (again.done, again.skipped) == (0, 1)


def test_image_smaller_than_the_mirrored_border_still_pairs(tmp_path):
    # 40x36 -> a 32x32 crop, below the 3 x 16 border the streaming path needs: the in-memory path
    src = image_folder(tmp_path / "src", sizes=[(40, 36)], grey_last=False)
    out = tmp_path / "pairs"
    report = write_pairs([src / "im0.png"], out, (2, 4, 8, 16), progress=False)
    assert report.done == 1
    assert np.array_equal(read(out / "GT" / "im0.png"), read(src / "im0.png")[:32, :32])
    for s in (2, 4, 8, 16):
        assert read(out / f"LRbicx{s}" / "im0.png").shape[:2] == (32 // s, 32 // s)


def test_bad_input_is_one_line_exit_2(tmp_path):
    src = image_folder(tmp_path / "src", sizes=[(40, 40)], grey_last=False)
    assert_user_error(run_cli("sr", "pairs", tmp_path / "missing", "--out", tmp_path / "o"), "does not exist")
    assert_user_error(run_cli("sr", "pairs", src, "--out", tmp_path / "o", "--scales", "1"), "scale 1")
    assert_user_error(run_cli("sr", "pairs", src, "--out", tmp_path / "o", "--scales", "x"), "--scales")


def test_unreadable_image_is_a_failed_row_and_strict_exits_1(tmp_path):
    src = image_folder(tmp_path / "src", sizes=[(40, 40)], grey_last=False)
    (src / "bad.png").write_bytes(b"not a png at all")
    proc = run_cli("sr", "pairs", src, "--out", tmp_path / "o", "--scales", "2", "--strict", "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert "failed: " in proc.stderr and "bad.png" in proc.stderr
    rows = {r["stem"]: r for r in csv.DictReader(open(tmp_path / "o" / "pairs.csv", encoding="utf-8"))}
    assert rows["bad"]["status"] == "failed" and rows["im0"]["status"] == "written"
    assert (tmp_path / "o" / "meta_info.txt").read_text() == "im0.png (40,40,3)\n"
