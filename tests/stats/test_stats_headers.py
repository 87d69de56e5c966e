"""Header sizes: every format, EXIF rotation, broken files — the fast reader agrees with Pillow."""

from __future__ import annotations

import pytest
from PIL import Image, ImageOps

from methbuild.io.imageinfo import probe
from methbuild.stats.headers import read_header
from tests.stats.imgs import save

CASES = [
    # (file name, width, height, Pillow format, mode, save options)
    ("a.jpg", 123, 45, "JPEG", "RGB", {}),
    ("grey.jpeg", 64, 200, "JPEG", "L", {}),
    ("cmyk.jpg", 77, 33, "JPEG", "CMYK", {}),
    ("progressive.jpg", 300, 199, "JPEG", "RGB", {"progressive": True}),
    ("icc.jpg", 50, 60, "JPEG", "RGB", {"icc_profile": b"\0" * 70000}),  # APP2 larger than the first read
    ("a.png", 321, 17, "PNG", "RGB", {}),
    ("rgba.png", 8, 9, "PNG", "RGBA", {}),
    ("a.gif", 40, 41, "GIF", "P", {}),
    ("a.bmp", 99, 101, "BMP", "RGB", {}),
    ("lossy.webp", 130, 70, "WEBP", "RGB", {"quality": 80}),
    ("lossless.webp", 31, 29, "WEBP", "RGB", {"lossless": True}),
    ("alpha.webp", 45, 46, "WEBP", "RGBA", {}),
    ("a.tif", 51, 52, "TIFF", "RGB", {}),
    ("deflate.tiff", 12, 700, "TIFF", "L", {"compression": "tiff_adobe_deflate"}),
]


@pytest.mark.parametrize("name,w,h,fmt,mode,kw", CASES, ids=[c[0] for c in CASES])
def test_known_sizes_of_every_format(tmp_path, name, w, h, fmt, mode, kw):
    p = save(tmp_path / name, w, h, fmt, "RGB" if mode == "P" else mode, **kw)
    hd = read_header(p)
    assert (hd.width, hd.height, hd.format, hd.truncated) == (w, h, fmt, False)
    info = probe(p)  # Pillow agrees
    assert (info.width, info.height, info.format) == (w, h, fmt)


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("TIFF", "tif")])
@pytest.mark.parametrize("orientation,swapped", [(1, False), (3, False), (5, True), (6, True), (8, True)])
def test_exif_rotation_swaps_width_and_height(tmp_path, fmt, ext, orientation, swapped):
    p = save(tmp_path / f"rot.{ext}", 400, 300, fmt, orientation=orientation)
    hd = read_header(p)
    assert (hd.width, hd.height) == ((300, 400) if swapped else (400, 300))
    with Image.open(p) as im:  # as a viewer shows it: Pillow's own transpose agrees
        assert ImageOps.exif_transpose(im).size == (hd.width, hd.height)


def test_rotated_photo_is_portrait(tmp_path):
    # A camera stores a portrait photo as landscape pixels plus orientation 6 (rotate 90° clockwise).
    p = save(tmp_path / "IMG_0001.JPG", 4032 // 8, 3024 // 8, "JPEG", orientation=6)
    hd = read_header(p)
    assert hd.height > hd.width


def test_unreadable_files_raise_value_error(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("this is not a PNG\n")
    (tmp_path / "random.gif").write_bytes(bytes(range(256)) * 4)
    good = save(tmp_path / "good.jpg", 64, 64, "JPEG").read_bytes()
    (tmp_path / "header-cut.jpg").write_bytes(good[:40])  # ends before the frame header
    for name in ("empty.jpg", "text.png", "random.gif", "header-cut.jpg", "missing.jpg"):
        with pytest.raises(ValueError):
            read_header(tmp_path / name)


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("PNG", "png"), ("GIF", "gif"), ("BMP", "bmp"),
                                     ("WEBP", "webp")])
def test_truncated_body_keeps_the_size_and_is_flagged(tmp_path, fmt, ext):
    data = save(tmp_path / f"full.{ext}", 200, 150, fmt, **({"lossless": True} if fmt == "WEBP" else {})).read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    hd = read_header(cut)
    assert (hd.width, hd.height, hd.format, hd.truncated) == (200, 150, fmt, True)
    with pytest.raises(OSError):  # Pillow cannot decode it: it really is truncated
        with Image.open(cut) as im:
            im.load()
    assert read_header(tmp_path / f"full.{ext}").truncated is False


def test_jpeg_with_trailing_bytes_after_end_marker_is_not_truncated(tmp_path):
    p = save(tmp_path / "trailer.jpg", 90, 80, "JPEG")
    p.write_bytes(p.read_bytes() + b"\0" * 100)
    assert read_header(p).truncated is False


def test_exif_block_after_the_frame_header_still_rotates(tmp_path):
    # Non-standard but seen in the wild: APP1 Exif placed after SOF0. Pillow reads markers up to the scan.
    p = save(tmp_path / "late.jpg", 120, 80, "JPEG", orientation=6)
    data = p.read_bytes()
    app1 = data.index(b"\xff\xe1")
    length = int.from_bytes(data[app1 + 2:app1 + 4], "big")
    seg = data[app1:app1 + 2 + length]
    rest = data[:app1] + data[app1 + 2 + length:]
    sof = rest.index(b"\xff\xc0")
    sof_len = int.from_bytes(rest[sof + 2:sof + 4], "big")
    moved = rest[:sof + 2 + sof_len] + seg + rest[sof + 2 + sof_len:]
    p.write_bytes(moved)
    info = probe(p)
    hd = read_header(p)
    assert (hd.width, hd.height) == (info.width, info.height) == (80, 120)
