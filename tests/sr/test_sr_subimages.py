"""`methbuild sr subimages`: BasicSR's extract_subimages positions, names and counts; HR and LR keys pair up."""

from __future__ import annotations

import numpy as np
import pytest

from methbuild.sr.subimages import positions, subimage_names
from tests.conftest import assert_user_error, run_cli
from tests.sr.helpers import basicsr_folder_pairs, image_folder, read


def basicsr_positions(n: int, crop: int, step: int, thresh: float) -> list[int]:
    """BasicSR's rule, re-expressed from its description: a range of starts every ``step`` while a
    crop fits, then the far-edge start when the remainder after the last crop exceeds ``thresh``."""
    space = list(np.arange(0, n - crop + 1, step))
    if n - (space[-1] + crop) > thresh:
        space.append(n - crop)
    return [int(v) for v in space]


@pytest.mark.parametrize("n", [480, 481, 719, 720, 721, 959, 1000, 1201, 4097])
@pytest.mark.parametrize("crop,step,thresh", [(480, 240, 0), (120, 60, 0), (480, 240, 100), (30, 15, 0), (7, 3, 2)])
def test_positions_follow_basicsr_rule(n, crop, step, thresh):
    assert positions(n, crop, step, thresh) == basicsr_positions(n, crop, step, thresh)


def test_smaller_than_the_crop_gives_none():
    assert positions(479, 480, 240) == []
    assert subimage_names("a", 479, 2000, 480, 240) == []


def test_names_are_row_major_from_s001():
    names = subimage_names("x", 9, 7, 4, 3)  # rows 0, 3, 5; columns 0, 3
    assert [n for n, _, _ in names] == [f"x_s{i:03d}.png" for i in range(1, 7)]
    assert [(t, l) for _, t, l in names] == [(0, 0), (0, 3), (3, 0), (3, 3), (5, 0), (5, 3)]


def test_paired_folder_keys_counts_and_pixels_match(tmp_path):
    # odd multiples of 4 so that the LR positions are the HR positions / 4, with far-edge crops
    src = image_folder(tmp_path / "src", sizes=[(204, 156), (132, 100), (36, 40)])
    root = tmp_path / "pairs"
    assert run_cli("sr", "pairs", src, "--out", root, "--scales", "2", "4", "--quiet").returncode == 0
    proc = run_cli("sr", "subimages", root, "--crop", "48", "--step", "24", "--workers", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    gt_sub, lr2_sub, lr4_sub = root / "GT_sub", root / "LRbicx2_sub", root / "LRbicx4_sub"
    names = sorted(p.name for p in gt_sub.glob("*.png"))
    assert names == sorted(p.name for p in lr2_sub.glob("*.png")) == sorted(p.name for p in lr4_sub.glob("*.png"))
    for stem in ("im0", "im1", "im2"):
        gt = read(root / "GT" / f"{stem}.png")
        h, w = gt.shape[:2]
        expected = len(basicsr_positions(h, 48, 24, 0)) * len(basicsr_positions(w, 48, 24, 0)) if min(h, w) >= 48 else 0
        assert len([n for n in names if n.startswith(f"{stem}_s")]) == expected
        for name, top, left in subimage_names(stem, h, w, 48, 24):
            assert np.array_equal(read(gt_sub / name), gt[top: top + 48, left: left + 48])
            lr4 = read(root / "LRbicx4" / f"{stem}.png")
            assert np.array_equal(read(lr4_sub / name), lr4[top // 4: top // 4 + 12, left // 4: left // 4 + 12])
    assert not any(n.startswith("im2_") for n in names)  # 36 wide: smaller than the crop
    assert not (gt_sub / "meta_info.txt").exists()  # BasicSR's folder reader would take it for an image
    assert len(basicsr_folder_pairs(gt_sub, lr4_sub)) == len(names)
    meta = (root / "meta_info_GT_sub.txt").read_text().splitlines()
    assert len(meta) == len(names) and meta[0].endswith("(48,48,3)")
    assert (root / "meta_info_LRbicx4_sub.txt").read_text().splitlines()[0].endswith("(12,12,3)")
    # a rerun finds every sub-image there and decodes nothing new
    again = run_cli("sr", "subimages", root, "--crop", "48", "--step", "24", "--quiet")
    assert again.returncode == 0 and (root / "meta_info_GT_sub.txt").read_text().splitlines() == meta


def test_plain_folder_goes_beside_it(tmp_path):
    src = image_folder(tmp_path / "hr", sizes=[(101, 77)], grey_last=False)
    proc = run_cli("sr", "subimages", src, "--crop", "50", "--step", "25", "--quiet")
    assert proc.returncode == 0, proc.stderr
    got = sorted(p.name for p in (tmp_path / "hr_sub").glob("*.png"))
    assert len((tmp_path / "meta_info_hr_sub.txt").read_text().splitlines()) == len(got)
    assert len(got) == len(basicsr_positions(77, 50, 25, 0)) * len(basicsr_positions(101, 50, 25, 0))


def test_crop_not_divisible_by_a_scale_is_refused(tmp_path):
    src = image_folder(tmp_path / "src", sizes=[(64, 64)], grey_last=False)
    root = tmp_path / "pairs"
    assert run_cli("sr", "pairs", src, "--out", root, "--scales", "4", "--quiet").returncode == 0
    assert_user_error(run_cli("sr", "subimages", root, "--crop", "30", "--step", "16"), "divisible")
    assert_user_error(run_cli("sr", "subimages", tmp_path / "nope"), "not a folder")
