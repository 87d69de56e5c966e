"""Small SR test sets made in code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyvips

from tests.lowres.images import natural

# odd sizes on purpose: crops, last positions and LR sizes all have remainders
SIZES = [(203, 157), (130, 97), (96, 96)]


def image_folder(folder: Path, sizes=SIZES, grey_last: bool = True) -> Path:
    """``folder`` with one PNG per size (im0.png, ...); the last one grey when ``grey_last``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(sizes):
        bands = 1 if grey_last and i == len(sizes) - 1 else 3
        interp = "b-w" if bands == 1 else "srgb"
        pyvips.Image.new_from_array(natural(w, h, bands, seed=i)).copy(interpretation=interp).pngsave(
            str(folder / f"im{i}.png"))
    return folder


def read(path: Path) -> np.ndarray:
    """Pixels of an image file as H × W × bands uint8."""
    im = pyvips.Image.new_from_file(str(path))
    return im.numpy().reshape(im.height, im.width, im.bands)


def basicsr_folder_pairs(gt_folder: Path, lq_folder: Path) -> list[tuple[str, str]]:
    """Pair two folders the way BasicSR's ``paired_paths_from_folder`` does: every non-hidden file of
    each (its ``scandir``), the same count, each GT name present among the LQ names."""
    gt = sorted(p.name for p in gt_folder.iterdir() if p.is_file() and not p.name.startswith("."))
    lq = sorted(p.name for p in lq_folder.iterdir() if p.is_file() and not p.name.startswith("."))
    assert len(gt) == len(lq), (len(gt), len(lq))
    assert all(n in set(lq) for n in gt)
    return list(zip(gt, lq))
