"""The report's small images: thumbnails (shrink-on-load), UltraMNIST boxes, MetH-SR crops with PSNR.

Each function decodes one source image at most, and only as much of it as the thumbnail needs:
``pyvips.Image.thumbnail`` lets the JPEG decoder shrink by 2, 4 or 8 while it reads. Output files are
small JPEGs (photographs) or PNGs (pixel art: LR crops, ImageNet rows), written into the report's
temporary folder (the whole folder is renamed into place at the end).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

THUMB = 160  # px, the longer side of a grid thumbnail
JPEG_Q = 78


def _vips():
    import pyvips

    return pyvips


def thumbnail(item: tuple[str, str, int]) -> tuple[int, int]:
    """Task: (source file, output .jpg, box side) → the thumbnail's (width, height). Shrink-on-load."""
    src, out, side = item
    pyvips = _vips()
    im = pyvips.Image.thumbnail(src, side, height=side, size="down")
    im = _srgb8(im)
    Path(out).write_bytes(im.write_to_buffer(".jpg", Q=JPEG_Q, strip=True))
    return im.width, im.height


def _srgb8(im):
    if im.hasalpha():
        im = im.flatten(background=[255, 255, 255])
    if im.interpretation not in ("srgb", "b-w"):
        im = im.colourspace("srgb")
    if im.format != "uchar":
        im = im.cast("uchar")
    return im


def boxes_thumbnail(item: tuple[str, str, int, list[tuple[int, int, int, int]]]) -> tuple[int, int]:
    """Task: an UltraMNIST image with its digit boxes drawn: (source, output .jpg, side, [(digit, x, y, s)])."""
    from PIL import Image, ImageDraw

    src, out, side, boxes = item
    pyvips = _vips()
    full = pyvips.Image.new_from_file(src, access="sequential")
    fw = full.width
    im = _srgb8(pyvips.Image.thumbnail(src, side, height=side, size="down"))
    f = im.width / fw
    arr = np.ndarray(buffer=im.write_to_memory(), dtype=np.uint8, shape=(im.height, im.width, im.bands))
    pil = Image.fromarray(arr if im.bands == 3 else arr[:, :, 0]).convert("RGB")
    draw = ImageDraw.Draw(pil)
    for digit, x, y, s in boxes:
        x0, y0, x1, y1 = x * f, y * f, (x + s) * f, (y + s) * f
        draw.rectangle([x0, y0, x1, y1], outline=(230, 30, 30), width=2)
        draw.text((x0 + 2, y0 + 1), str(digit), fill=(230, 30, 30))
    pil.save(out, format="JPEG", quality=JPEG_Q)
    return pil.width, pil.height


def pixels_png(pixels: np.ndarray, out: str | Path, scale: int) -> tuple[int, int]:
    """An HxWx3 uint8 array, nearest-upscaled by ``scale``, as PNG (ImageNet rows)."""
    from PIL import Image

    big = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
    Image.fromarray(big).save(out, format="PNG", optimize=True)
    return big.shape[1], big.shape[0]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays of one shape (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def _arr(im) -> np.ndarray:
    return np.ndarray(buffer=im.write_to_memory(), dtype=np.uint8, shape=(im.height, im.width, im.bands))


def sr_crops(item: tuple) -> dict:
    """Task: a MetH-SR test image → an HR crop and its LR crops (nearest-upscaled), with PSNRs.

    ``item`` = (HR file, {scale: LR file}, output folder, stem, crop side in HR pixels). For each scale:
    ``psnr_vs_bicubic``: the shipped LR crop against our own bicubic of the HR (recomputed here from the HR
    with :func:`methbuild.lowres.bicubic_pyramid`; a margin keeps the kernel's edge out of the compared
    pixels) — a check that the LR copy is what it claims; ``psnr_upscaled``: the LR crop upscaled again with
    bicubic against the HR crop — the classic bicubic baseline of SR papers.
    """
    from methbuild.lowres import bicubic_pyramid, crop_box, prepare

    hr_file, lr_files, out_dir, stem, side = item
    pyvips = _vips()
    scales = sorted(lr_files)
    smax = max(scales)
    hr, _ = prepare(pyvips.Image.new_from_file(hr_file))
    left, top, w, h = crop_box(hr.width, hr.height)
    hr = hr.crop(left, top, w, h)
    side = min(side, w, h) // smax * smax
    # the crop: centred, on the grid of the largest scale, so every LR crop is whole pixels
    cx = (w - side) // 2 // smax * smax
    cy = (h - side) // 2 // smax * smax
    margin = 4 * smax
    mx0, my0 = max(0, cx - margin), max(0, cy - margin)
    mx1, my1 = min(w, cx + side + margin), min(h, cy + side + margin)
    region = hr.crop(mx0, my0, mx1 - mx0, my1 - my0).copy_memory()
    ours = bicubic_pyramid(region, scales=scales, crop_multiple=smax)
    hr_crop = _srgb8(hr.crop(cx, cy, side, side))
    out_dir = Path(out_dir)
    res = {"hr": f"{stem}_hr.png", "side": side, "scales": []}
    (out_dir / res["hr"]).write_bytes(hr_crop.write_to_buffer(".png", compression=6))
    hr_arr = _arr(hr_crop)
    for s in scales:
        lr = pyvips.Image.new_from_file(str(lr_files[s]))
        lx, ly, n = cx // s, cy // s, side // s
        lr_crop = lr.crop(lx, ly, n, n)
        mine = ours[s].crop((cx - mx0) // s, (cy - my0) // s, n, n)
        p_check = psnr(_arr(lr_crop), _arr(mine))
        up_bic = lr_crop.resize(s, kernel="cubic")
        up_bic = up_bic.crop(0, 0, min(side, up_bic.width), min(side, up_bic.height))
        p_base = psnr(_arr(_srgb8(up_bic)), hr_arr[: up_bic.height, : up_bic.width])
        name = f"{stem}_x{s}.png"
        shown = _srgb8(lr_crop.resize(s, kernel="nearest"))
        (out_dir / name).write_bytes(shown.write_to_buffer(".png", compression=6))
        res["scales"].append({"scale": s, "file": name, "lr_side": n, "psnr_vs_bicubic": p_check,
                              "psnr_upscaled": p_base})
    return res
