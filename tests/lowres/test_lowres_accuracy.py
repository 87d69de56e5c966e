"""Accuracy: every scale within 50 dB PSNR of a float64 MATLAB-imresize bicubic, and exact sizes."""

from __future__ import annotations

import numpy as np
import pytest
import pyvips
from PIL import Image

from methbuild.lowres import bicubic_pyramid, build_lowres
from tests.lowres.images import high_frequency, natural
from tests.lowres.matlab_bicubic import contributions, imresize_down, psnr

SCALES = (2, 4, 8, 16)
MIN_PSNR = 50.0


def _load(path) -> np.ndarray:
    with Image.open(path) as im:  # Pillow reads what we wrote: an independent PNG decoder
        return np.asarray(im)


# --------------------------------------------------------------------------- the reference itself


def test_reference_weights_are_matlab_shaped():
    idx, w = contributions(64, 4)
    assert idx.shape[0] == 16
    assert np.allclose(w.sum(axis=1), 1)
    # interior output pixel 8 (0-based) is centred on input 8·4 + 1.5 and symmetric about it
    centre = 8 * 4 + 1.5
    row_w, row_i = w[8], idx[8]
    nz = row_w != 0
    assert np.isclose(np.sum(row_w[nz] * row_i[nz]), centre)
    # the first output pixel samples 1-based taps -6..11; they mirror with the edge pixel repeated
    assert idx[0][:8].tolist() == [6, 5, 4, 3, 2, 1, 0, 0]


def test_reference_keeps_constants_and_ramps():
    flat = np.full((48, 80), 77.0)
    for s in SCALES:
        assert np.allclose(imresize_down(flat, s), 77.0)
    ramp = np.tile(np.arange(96, dtype=np.float64), (32, 1))
    out = imresize_down(ramp, 4)
    # a linear ramp is reproduced exactly away from the mirrored border: value = centre coordinate
    assert np.allclose(out[:, 2:-2], (np.arange(24) * 4 + 1.5)[2:-2])


def test_reference_agrees_with_pillow_in_the_interior():
    # Pillow's BICUBIC is the same antialiased Keys kernel (only its border handling differs):
    # an independent check that the reference is the algorithm it claims to be.
    a = natural(256, 192, seed=3)
    for s in (2, 4, 8):
        ref = imresize_down(a, s)
        pil = np.asarray(Image.fromarray(a).resize((256 // s, 192 // s), Image.BICUBIC))
        b = 3
        assert psnr(pil[b:-b, b:-b], ref[b:-b, b:-b]) > MIN_PSNR


# --------------------------------------------------------------------------- our LR against it


@pytest.mark.parametrize("kind", ["natural", "noise", "checker", "zoneplate"])
def test_psnr_against_matlab_reference(kind):
    a = natural(400, 304, seed=1) if kind == "natural" else high_frequency(400, 304, kind, seed=1)
    pyramid = bicubic_pyramid(pyvips.Image.new_from_array(a).copy(interpretation="srgb" if a.ndim == 3 else "b-w"))
    for s in SCALES:
        lr = pyramid[s].numpy()
        ref = imresize_down(a[: 304 // 16 * 16, : 400 // 16 * 16], s)
        assert lr.shape == ref.shape
        assert lr.dtype == np.uint8
        value = psnr(lr, ref)
        assert value >= MIN_PSNR, f"{kind} x{s}: {value:.2f} dB"


def test_written_files_match_reference(tmp_path):
    a = natural(333, 257, seed=5)  # odd sizes: crop to 320 × 256
    src = tmp_path / "hr.png"
    Image.fromarray(a).save(src)
    build_lowres([src], tmp_path / "out", workers=1, progress=False)
    for s in SCALES:
        lr = _load(tmp_path / "out" / f"X{s}" / "hr.png")
        assert lr.shape == (256 // s, 320 // s, 3)
        assert psnr(lr, imresize_down(a[:256, :320], s)) >= MIN_PSNR


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("w,h", [(97, 61), (130, 66), (33, 17), (64, 48), (255, 16)])
def test_sizes_exact_for_odd_and_even_dimensions(tmp_path, w, h):
    src = tmp_path / f"img_{w}x{h}.png"
    Image.fromarray(natural(w, h, seed=w)).save(src)
    report = build_lowres([src], tmp_path / "out", workers=1, progress=False)
    assert report.done == 1 and report.failed == 0
    cw, ch = w // 16 * 16, h // 16 * 16
    for s in SCALES:
        with Image.open(tmp_path / "out" / f"X{s}" / src.with_suffix(".png").name) as im:
            assert im.size == (cw // s, ch // s)
            assert im.mode == "RGB"


def test_crop_is_top_left_anchored():
    a = natural(50, 40, seed=9)
    marked = a.copy()
    marked[32:, :] = 0  # rows and columns beyond the crop must not influence anything
    marked[:, 48:] = 0
    p1 = bicubic_pyramid(pyvips.Image.new_from_array(a).copy(interpretation="srgb"), scales=(2,))
    p2 = bicubic_pyramid(pyvips.Image.new_from_array(marked).copy(interpretation="srgb"), scales=(2,))
    assert p1[2].width == 24 and p1[2].height == 16
    assert np.array_equal(p1[2].numpy(), p2[2].numpy())


def test_other_crop_multiple_and_scales():
    im = pyvips.Image.new_from_array(natural(100, 70, seed=2)).copy(interpretation="srgb")
    out = bicubic_pyramid(im, scales=(3, 6), crop_multiple=6)
    assert sorted(out) == [3, 6]
    assert (out[3].width, out[3].height) == (32, 22)
    assert (out[6].width, out[6].height) == (16, 11)


@pytest.mark.parametrize("band_rows,chunk_rows", [(16, 16), (48, 100), (100, 32), (256, 512)])
def test_streamed_bands_equal_the_whole_mirrored_image(band_rows, chunk_rows):
    # the production path reduces a window of rows at a time with mirrored context; every band
    # size (one band, many, a short last band) must give exactly the whole mirrored image's reduce
    from methbuild.lowres import _padded_reduce, stream_pyramid

    for a in (high_frequency(400, 304, "noise", seed=3), natural(320, 128, bands=1, seed=4), natural(96, 96, seed=5),
              natural(1040, 160, seed=6), natural(48, 1040, seed=7), natural(32, 32, seed=8)):
        im = pyvips.Image.new_from_array(np.ascontiguousarray(a)).copy(interpretation="srgb" if a.ndim == 3 else "b-w")
        for threaded in (True, False):
            got: dict[int, list] = {}
            stream_pyramid(im, SCALES, lambda s, rows: got.setdefault(s, []).append(rows), band_rows=band_rows,
                           chunk_rows=chunk_rows, threaded=threaded)
            for s in SCALES:
                streamed = np.concatenate(got[s])
                assert np.array_equal(streamed, _padded_reduce(im, s).numpy().reshape(streamed.shape)), (a.shape, s)


def test_streamed_odd_scales_equal_the_whole_mirrored_image():
    from methbuild.lowres import _padded_reduce, stream_pyramid

    im = pyvips.Image.new_from_array(natural(300, 210, seed=11)).copy(interpretation="srgb")
    got: dict[int, list] = {}
    stream_pyramid(im, (3, 5, 6), lambda s, rows: got.setdefault(s, []).append(rows), band_rows=40, chunk_rows=30)
    for s in (3, 5, 6):
        streamed = np.concatenate(got[s])
        assert np.array_equal(streamed, _padded_reduce(im, s).numpy().reshape(streamed.shape)), s


def test_mirrored_border_is_closer_than_edge_copy():
    a = high_frequency(256, 192, "noise", seed=6)
    im = pyvips.Image.new_from_array(a).copy(interpretation="srgb")
    for s in (4, 16):
        ref = imresize_down(a, s)
        ours = bicubic_pyramid(im, scales=(s,))[s].numpy()
        plain = im.reduce(s, s, kernel="cubic", gap=0.0).numpy()
        assert psnr(ours, ref) > psnr(plain, ref)
        assert np.array_equal(ours[2:-2, 2:-2], plain[2:-2, 2:-2])  # only the outer two LR pixels change
