"""Building LR sets: bands, EXIF orientation, corrupt inputs, resume, inputs, the PNG writer, the CLI."""

from __future__ import annotations

import csv
import io
import os
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import pyvips
from PIL import Image

from methbuild.errors import UserError
from methbuild.io import lowres_png
from methbuild.io.lock import LOCK_NAME
from methbuild.io.lowres_png import png_size, write_png
from methbuild.lowres import LowresFailures, build_lowres, sources_from
from tests.conftest import assert_user_error, run_cli
from tests.lowres.images import natural
from tests.lowres.matlab_bicubic import imresize_down, psnr

SCALES = (2, 4, 8, 16)


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "lowres.csv", newline="") as fh:
        return {r["stem"]: r for r in csv.DictReader(fh)}


def _lr(out: Path, scale: int, stem: str) -> np.ndarray:
    with Image.open(out / f"X{scale}" / f"{stem}.png") as im:
        return np.asarray(im)


# --------------------------------------------------------------------------- bands and colour


def _band_sources(folder: Path) -> dict[str, tuple[Path, np.ndarray | None]]:
    """name -> (file, the 8-bit pixels we expect as HR, when simple to state)."""
    grey = natural(80, 48, bands=1, seed=1)
    rgb = natural(80, 48, seed=2)
    alpha = np.linspace(0, 255, 80 * 48, dtype=np.uint8).reshape(48, 80)
    grey16 = (grey.astype(np.uint16) * 257 + 100).astype(np.uint16)  # not an exact multiple: rounding shows
    srcs: dict[str, tuple[Path, np.ndarray | None]] = {}
    Image.fromarray(grey, "L").save(folder / "grey.png")
    srcs["grey"] = (folder / "grey.png", grey)
    Image.fromarray(rgb, "RGB").save(folder / "rgb.png")
    srcs["rgb"] = (folder / "rgb.png", rgb)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(folder / "rgba.png")
    srcs["rgba"] = (folder / "rgba.png", rgb)
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(folder / "greyalpha.png")
    srcs["greyalpha"] = (folder / "greyalpha.png", grey)
    pyvips.Image.new_from_array(grey16).copy(interpretation="grey16").pngsave(str(folder / "grey16.png"))
    srcs["grey16"] = (folder / "grey16.png", np.rint(grey16 * (255 / 65535)).astype(np.uint8))
    rgb16 = (rgb.astype(np.uint16) * 257).astype(np.uint16)
    pyvips.Image.new_from_array(rgb16).copy(interpretation="rgb16").pngsave(str(folder / "rgb16.png"))
    srcs["rgb16"] = (folder / "rgb16.png", rgb)
    cmyk = np.dstack([255 - rgb, np.zeros((48, 80), np.uint8)])
    Image.fromarray(cmyk, "CMYK").save(folder / "cmyk.jpg", quality=95)
    srcs["cmyk"] = (folder / "cmyk.jpg", None)
    return srcs


def test_bands_kept_or_converted_with_notes(tmp_path):
    srcs = _band_sources(tmp_path)
    out = tmp_path / "out"
    report = build_lowres([p for p, _ in srcs.values()], out, workers=1, progress=False)
    assert report.failed == 0 and report.done == len(srcs)
    rows = _rows(out)
    expect_bands = {"grey": 1, "rgb": 3, "rgba": 3, "greyalpha": 1, "grey16": 1, "rgb16": 3, "cmyk": 3}
    for name, bands in expect_bands.items():
        assert int(rows[name]["bands"]) == bands, name
        lr = _lr(out, 2, name)
        assert lr.dtype == np.uint8
        assert (lr.ndim == 2) if bands == 1 else (lr.shape[2] == 3), (name, lr.shape)
        assert lr.shape[:2] == (24, 40)
        hr = srcs[name][1]
        if hr is not None:
            value = psnr(lr, imresize_down(hr[:48, :80], 2))
            assert value >= 50, (name, value)
    assert rows["grey"]["notes"] == "" and rows["rgb"]["notes"] == ""
    assert "alpha dropped" in rows["rgba"]["notes"] and "alpha dropped" in rows["greyalpha"]["notes"]
    assert "16-bit converted to 8-bit grey" in rows["grey16"]["notes"]
    assert "16-bit converted to 8-bit sRGB" in rows["rgb16"]["notes"]
    assert "CMYK converted to 8-bit sRGB" in rows["cmyk"]["notes"]
    # CMYK of an RGB image (C = 255 − R, no black): the conversion lands near the original colours
    cmyk_lr = _lr(out, 2, "cmyk").astype(float)
    rgb_lr = _lr(out, 2, "rgb").astype(float)
    assert np.corrcoef(cmyk_lr.ravel(), rgb_lr.ravel())[0, 1] > 0.9


def test_icc_profile_is_carried_to_the_png(tmp_path):
    rgb = natural(64, 32, seed=4)
    im = pyvips.Image.new_from_array(rgb).copy(interpretation="srgb")
    src = tmp_path / "tagged.jpg"
    im.jpegsave(str(src), profile="srgb", Q=95)
    expected = pyvips.Image.new_from_file(str(src)).get("icc-profile-data")
    build_lowres([src], tmp_path / "out", scales=(2,), workers=1, progress=False)
    with Image.open(tmp_path / "out" / "X2" / "tagged.png") as lr:
        assert lr.info.get("icc_profile") == expected


# --------------------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize("orientation", [6, 3, 8])
def test_exif_orientation_applied_before_crop(tmp_path, orientation):
    stored = np.zeros((32, 64), np.uint8)
    stored[:, 32:] = 255  # stored: left half black, right half white
    exif = Image.Exif()
    exif[0x0112] = orientation
    src = tmp_path / f"rot{orientation}.jpg"
    Image.fromarray(stored, "L").save(src, exif=exif.tobytes(), quality=95)
    out = tmp_path / "out"
    build_lowres([src], out, scales=(2,), workers=1, progress=False)
    row = _rows(out)[src.stem]
    lr = _lr(out, 2, src.stem).astype(float)
    assert f"EXIF orientation {orientation} applied" in row["notes"]
    if orientation == 6:  # displayed = stored rotated 90° clockwise: black on top
        assert (int(row["width"]), int(row["height"])) == (32, 64)
        assert lr.shape == (32, 16)
        assert lr[:12].mean() < 20 and lr[-12:].mean() > 235
    elif orientation == 8:  # rotated 90° counter-clockwise: white on top
        assert lr.shape == (32, 16)
        assert lr[:12].mean() > 235 and lr[-12:].mean() < 20
    else:  # 180°: white on the left
        assert (int(row["width"]), int(row["height"])) == (64, 32)
        assert lr[:, :12].mean() > 235 and lr[:, -12:].mean() < 20


# --------------------------------------------------------------------------- failures and resume


def _png_folder(folder: Path, sizes: list[tuple[int, int]]) -> Path:
    """``folder`` with one natural-looking PNG per (width, height): im0.png, im1.png, ..."""
    folder.mkdir()
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(natural(w, h, seed=i)).save(folder / f"im{i}.png")
    return folder


def _folder_with_bad_files(folder: Path) -> None:
    folder.mkdir()
    for i in range(3):
        Image.fromarray(natural(96, 64, seed=i)).save(folder / f"good{i}.jpg", quality=90)
    (folder / "garbage.jpg").write_bytes(b"this is not an image at all" * 10)
    whole = io.BytesIO()
    Image.fromarray(natural(300, 200, seed=7)).save(whole, "JPEG", quality=95)
    (folder / "truncated.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    Image.fromarray(natural(12, 40, seed=8)).save(folder / "tiny.png")  # narrower than the crop multiple


def test_corrupt_files_are_listed_and_the_run_goes_on(tmp_path):
    src = tmp_path / "src"
    _folder_with_bad_files(src)
    out = tmp_path / "out"
    report = build_lowres(sources_from(src), out, workers=2, progress=False)
    assert (report.done, report.failed) == (3, 3)
    rows = _rows(out)
    assert {k for k, r in rows.items() if r["status"] == "failed"} == {"garbage", "truncated", "tiny"}
    assert "not a readable image" in rows["garbage"]["error"]
    assert "premature end" in rows["truncated"]["error"].lower() or "decode" in rows["truncated"]["error"]
    assert "smaller than the crop multiple" in rows["tiny"]["error"]
    for name in ("garbage", "truncated", "tiny"):
        assert not any((out / f"X{s}" / f"{name}.png").exists() for s in SCALES)
    assert not [p.name for p in out.rglob(".*") if p.name != LOCK_NAME]  # no temporary file left behind
    for i in range(3):
        assert rows[f"good{i}"]["status"] == "written" and rows[f"good{i}"]["error"] == ""
    with pytest.raises(LowresFailures) as info:
        build_lowres(sources_from(src), out, workers=1, strict=True, progress=False)
    assert info.value.report.failed == 3 and info.value.report.skipped == 3


def test_resume_skips_finished_and_redoes_broken(tmp_path):
    src = _png_folder(tmp_path / "src", [(112, 80)] * 3)
    out = tmp_path / "out"
    first = build_lowres(sources_from(src), out, workers=1, progress=False)
    assert first.done == 3
    before = {p: p.stat().st_mtime_ns for p in out.glob("X*/*.png")}
    content = {p: p.read_bytes() for p in before}
    # damage: one LR file missing, one truncated (as a killed non-atomic writer would leave), a stale temp
    (out / "X4" / "im1.png").unlink()
    damaged = out / "X8" / "im2.png"
    damaged.write_bytes(damaged.read_bytes()[:-20])
    stale = out / "X2" / ".im0.png.tmp-abc123"
    stale.write_bytes(b"half")
    second = build_lowres(sources_from(src), out, workers=1, progress=False)
    assert (second.done, second.skipped, second.failed) == (2, 1, 0)
    assert not stale.exists()
    rows = _rows(out)
    assert rows["im0"]["status"] == "already complete"
    assert rows["im1"]["status"] == rows["im2"]["status"] == "written"
    for p, t in before.items():
        if p in (out / "X4" / "im1.png", damaged):
            assert p.read_bytes() == content[p]  # redone, identical: the output is deterministic
        else:
            assert p.stat().st_mtime_ns == t, p  # untouched
    third = build_lowres(sources_from(src), out, workers=1, progress=False)
    assert (third.done, third.skipped) == (0, 3)
    mode = (out / "lowres.csv").stat().st_mode & 0o777
    assert mode == (out / "X2" / "im0.png").stat().st_mode & 0o777 and mode & 0o044  # readable by others
    assert "crop_width" in (out / "lowres.csv").read_text().splitlines()[0]


def test_changed_crop_multiple_rewrites_wrong_sizes(tmp_path):
    src = tmp_path / "a.png"
    Image.fromarray(natural(100, 72, seed=1)).save(src)
    out = tmp_path / "out"
    build_lowres([src], out, scales=(2, 4), crop_multiple=4, workers=1, progress=False)
    assert png_size(out / "X2" / "a.png") == (50, 36)
    report = build_lowres([src], out, scales=(2, 4), crop_multiple=16, workers=1, progress=False)
    assert report.done == 1
    assert png_size(out / "X2" / "a.png") == (48, 32)


# --------------------------------------------------------------------------- inputs


def test_csv_source_relative_to_its_folder(tmp_path):
    root = tmp_path / "MetH-SR"
    (root / "data").mkdir(parents=True)
    for oid in (101, 202):
        Image.fromarray(natural(64, 48, seed=oid)).save(root / "data" / f"{oid}.jpg", quality=90)
    with open(root / "MetH-SR.csv", "w", newline="", encoding="utf-8-sig") as fh:
        w = csv.writer(fh)
        w.writerow(["ID", "Label", "Image file", "Width", "Height", "Product size", "Aspect ratio", "Split"])
        for oid in (101, 202):
            w.writerow([oid, "", f"data/{oid}.jpg", 64, 48, 3072, 1.3333, "test"])
    sources = sources_from(root / "MetH-SR.csv")
    assert sources == [root / "data" / "101.jpg", root / "data" / "202.jpg"]
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    proc = run_cli("lowres", "../MetH-SR/MetH-SR.csv", "--out", "../lr", "--scales", "2", "4", "--quiet",
                   cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert "2 written" in proc.stdout
    assert png_size(tmp_path / "lr" / "X4" / "202.png") == (16, 12)
    assert not (tmp_path / "lr" / "X8").exists()


def test_input_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        sources_from(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no image files"):
        sources_from(tmp_path / "empty")
    bad_csv = tmp_path / "x.csv"
    bad_csv.write_text("ID,Path\n1,a.jpg\n")
    with pytest.raises(UserError, match="Image file"):
        sources_from(bad_csv)
    a, b = tmp_path / "one" / "same.jpg", tmp_path / "two" / "same.png"
    with pytest.raises(UserError, match="share the name"):
        build_lowres([a, b], tmp_path / "out", progress=False)
    for scales, crop in [((0,), 16), ((3,), 16), ((2, 32), 16), ((4,), 0)]:
        with pytest.raises(UserError):
            build_lowres([a], tmp_path / "out2", scales=scales, crop_multiple=crop, progress=False)
    assert not (tmp_path / "out2").exists()  # refused before creating anything


# --------------------------------------------------------------------------- the PNG writer


ENGINES = ["zlib"] + (["isal"] if lowres_png.deflate_engine() == "isal" else [])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("shape", [(1, 1), (37, 53), (20, 31, 3), (300, 7, 3)])
def test_png_round_trip_across_blocks(tmp_path, monkeypatch, shape, engine):
    monkeypatch.setattr(lowres_png, "BLOCK_BYTES", 64)  # many small blocks: the block seams are exercised
    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    a[: shape[0] // 2] //= 16  # some compressible rows too
    path = write_png(tmp_path / "x.png", a, engine=engine)
    with Image.open(path) as im:
        assert np.array_equal(np.asarray(im), a)
    assert np.array_equal(pyvips.Image.new_from_file(str(path)).numpy().reshape(a.shape), a)
    assert png_size(path) == (shape[1], shape[0])
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # readable by others (umask permitting)


def test_png_size_rejects_incomplete_files(tmp_path):
    path = write_png(tmp_path / "x.png", np.zeros((10, 12, 3), np.uint8))
    data = path.read_bytes()
    assert png_size(path) == (12, 10)
    path.write_bytes(data[:-1])
    assert png_size(path) is None
    path.write_bytes(b"")
    assert png_size(path) is None
    assert png_size(tmp_path / "nope.png") is None
    with pytest.raises(ValueError):
        write_png(tmp_path / "y.png", np.zeros((4, 4), np.uint16))
    assert not list(tmp_path.glob(".y.png*"))
    assert zlib.crc32(data[12:29]) == int.from_bytes(data[29:33], "big")  # IHDR CRC


# --------------------------------------------------------------------------- the command line


def test_cli_end_to_end_with_a_corrupt_file_and_strict(tmp_path):
    src = tmp_path / "src"
    _folder_with_bad_files(src)
    out = tmp_path / "out"
    proc = run_cli("lowres", src, "--out", out, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert "3 written" in proc.stdout and "3 failed" in proc.stdout
    assert "failed:" in proc.stderr and "garbage.jpg" in proc.stderr
    assert len(_rows(out)) == 6
    proc = run_cli("lowres", src, "--out", out, "--strict", "--quiet")
    assert proc.returncode == 1
    assert "3 already complete" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args,needle", [
    (["--scales", "0"], "scale 0"),
    (["--scales", "3"], "scale 3"),
    (["--scales", "2", "4", "3"], "scale 3"),
    (["--scales", "2,x"], "integers"),
    (["--crop-multiple", "8", "--scales", "16"], "scale 16"),
])
def test_cli_bad_scales(tmp_path, args, needle):
    Image.fromarray(natural(32, 32)).save(tmp_path / "a.png")
    proc = run_cli("lowres", tmp_path / "a.png", "--out", tmp_path / "out", *args)
    assert_user_error(proc, needle)
    assert not (tmp_path / "out").exists()


def test_cli_missing_src_and_unwritable_out(tmp_path):
    assert_user_error(run_cli("lowres", tmp_path / "nope", "--out", tmp_path / "out"), "does not exist")
    Image.fromarray(natural(32, 32)).save(tmp_path / "a.png")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_user_error(run_cli("lowres", tmp_path / "a.png", "--out", blocker), "is a file")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        assert_user_error(run_cli("lowres", tmp_path / "a.png", "--out", ro / "out"), "cannot write")


def test_output_does_not_depend_on_workers(tmp_path):
    src = _png_folder(tmp_path / "src", [(80 + 16 * i, 64) for i in range(4)])
    (src / ".hidden.png").write_bytes(b"x")
    (src / "notes.txt").write_text("not an image")
    assert [p.name for p in sources_from(src)] == [f"im{i}.png" for i in range(4)]
    build_lowres(sources_from(src), tmp_path / "a", workers=1, progress=False)
    build_lowres(sources_from(src), tmp_path / "b", workers=2, vips_threads=1, progress=False)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert len(files_a) == 16
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert (tmp_path / "a" / "lowres.csv").read_text() == (tmp_path / "b" / "lowres.csv").read_text()


def test_a_changed_source_is_redone(tmp_path):
    src = tmp_path / "a.png"
    Image.fromarray(natural(64, 64, seed=1)).save(src)
    out = tmp_path / "out"
    build_lowres([src], out, scales=(2,), workers=1, progress=False)
    first = (out / "X2" / "a.png").read_bytes()
    Image.fromarray(natural(64, 64, seed=2)).save(src)
    later = (out / "X2" / "a.png").stat().st_mtime_ns + 1_000_000_000
    os.utime(src, ns=(later, later))
    report = build_lowres([src], out, scales=(2,), workers=1, progress=False)
    assert report.done == 1
    assert (out / "X2" / "a.png").read_bytes() != first


def test_rerun_of_a_finished_set_opens_no_source(tmp_path):
    src = _png_folder(tmp_path / "src", [(64, 48)] * 3)
    out = tmp_path / "out"
    build_lowres(sources_from(src), out, workers=1, progress=False)
    before = (out / "lowres.csv").read_text()
    # make a source unreadable but keep its old time: a rerun that decoded it would now fail
    old = (src / "im1.png").stat()
    (src / "im1.png").write_bytes(b"not a png any more".ljust(old.st_size, b"!"))  # same size: the check agrees
    os.utime(src / "im1.png", ns=(old.st_atime_ns, old.st_mtime_ns))
    report = build_lowres(sources_from(src), out, workers=2, progress=False)
    assert (report.done, report.skipped, report.failed) == (0, 3, 0)
    assert (out / "lowres.csv").read_text() == before.replace(",written,", ",already complete,")


def test_a_file_that_breaks_off_mid_image_leaves_no_lr_file(tmp_path):
    # decoding fails after several bands were decoded, reduced and streamed into the PNGs: every
    # scale's temporary file goes, no final name appears, and the reason is in the table
    whole = io.BytesIO()
    Image.fromarray(natural(1200, 1400, seed=12)).save(whole, "JPEG", quality=95)
    src = tmp_path / "broken.jpg"
    src.write_bytes(whole.getvalue()[: len(whole.getvalue()) * 3 // 4])
    out = tmp_path / "out"
    report = build_lowres([src], out, workers=1, progress=False)
    assert report.failed == 1 and "decode" in report.failures[0][1]
    assert not [p for p in out.rglob("*.png")]
    assert not [p.name for p in out.rglob(".*") if p.name != LOCK_NAME]


def test_a_failing_scale_stops_the_image_at_once(tmp_path):
    # one scale's sink failing (a full disk, say) must stop decoding and the other scales early,
    # and the error must come out of stream_pyramid
    from methbuild.lowres import stream_pyramid

    im = pyvips.Image.new_from_array(natural(640, 2048, seed=13)).copy(interpretation="srgb")
    calls = {s: 0 for s in SCALES}

    def sink(s, rows):
        calls[s] += 1
        if s == 16:
            raise OSError("No space left on device")
        if s == 2:
            time.sleep(0.05)  # a slow scale: 16 blocks would take 0.8 s

    started = time.perf_counter()
    with pytest.raises(OSError, match="No space"):
        stream_pyramid(im, SCALES, sink, band_rows=64, chunk_rows=64)
    assert calls[16] == 1
    assert calls[2] < 2048 // 2 // 64 and time.perf_counter() - started < 0.6
