"""`methbuild stats` under hostile and unlucky input (issue 13): pixel bombs and forged sizes, non-UTF-8
names, absurd manifest sizes, negative seeds, a full disk, two runs on one folder, a tampered cache."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pandas as pd

from methbuild.io.lock import folder_lock
from tests.conftest import assert_user_error, png_header, run_cli
from tests.stats.imgs import save


def tiff_header(path: Path, w: int, h: int) -> Path:
    """A little-endian grey TIFF declaring w × h pixels in one (absent) strip: Pillow parses it, the fast path does not."""
    tags = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8), (277, 3, 1),
            (278, 4, h), (279, 4, w * h)]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", t, typ, 1, v) for t, typ, v in tags)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0))
    return path


def _images(out: Path) -> pd.DataFrame:
    with open(out / "images.parquet", "rb") as fh:  # Arrow cannot open a path that is not UTF-8 itself
        return pd.read_parquet(fh).set_index("path")


def _problems(out: Path) -> dict[str, str]:
    df = pd.read_csv(out / "problems.csv", keep_default_na=False)
    return dict(zip(df["path"], df["problem"]))


# --------------------------------------------------------------------------- pixel bombs, forged sizes


def test_pixel_bombs_and_forged_sizes_are_listed_never_decoded_nor_wrapped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    save(src / "ok.png", 64, 48, "PNG")
    png_header(src / "bomb.png", 100_000, 100_000)  # 10,000 MP in 65 bytes
    tiff_header(src / "bomb.tif", 20_000, 20_000)  # beyond Pillow's own bomb limit: it refuses to open it
    png_header(src / "forged.png", 2**32 - 1, 2**32 - 1)  # w·h would wrap int64
    out = tmp_path / "out"
    proc = run_cli("stats", src, "--out", out, "--no-figure")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    images = _images(out)
    assert images.loc["bomb.png", ["width", "height"]].tolist() == [100_000, 100_000]
    assert images.loc["bomb.tif", ["width", "height"]].tolist() == [20_000, 20_000]
    assert pd.isna(images.loc["forged.png", "width"])
    assert (images["product_size"].dropna() > 0).all()
    problems = _problems(out)
    assert "decompression bomb" in problems["bomb.png"] and "10000 MP" in problems["bomb.png"]
    assert "decompression bomb" in problems["bomb.tif"]
    assert "2,147,483,647" in problems["forged.png"]
    s = pd.read_csv(out / "summary.csv").iloc[0]
    assert (s["images"], s["unreadable"]) == (3, 1) and s["mp_min"] > 0


def test_absurd_manifest_sizes_are_listed_problems(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("ID,Image file,Width,Height\n1,1.jpg,1e30,100\n2,2.jpg,-5,100\n3,3.jpg,400,300\n"
                 "4,4.jpg,99999999999,5\n5,5.jpg,12.5,4\n6,6.jpg,,\n")
    out = tmp_path / "out"
    proc = run_cli("stats", m, "--out", out, "--no-figure")
    assert proc.returncode == 0, proc.stderr
    s = pd.read_csv(out / "summary.csv").iloc[0]
    assert (s["images"], s["unreadable"]) == (1, 5)
    assert s["mp_min"] == s["mp_max"] == 0.12  # never negative megapixels
    problems = _problems(out)
    for f in ("1.jpg", "2.jpg", "4.jpg", "5.jpg"):
        assert "not a whole number of pixels" in problems[f], problems[f]
    assert "no width/height" in problems["6.jpg"]


# --------------------------------------------------------------------------- non-UTF-8 names


def test_non_utf8_names_are_kept_escaped(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONIOENCODING", "utf-8:strict")  # a UTF-8 terminal that refuses undecodable bytes
    a, b = tmp_path / "a", Path(os.fsdecode(os.fsencode(tmp_path) + b"/b\xf1"))  # the input's name too
    save(a / "ok.png", 64, 48, "PNG")
    raw = os.fsencode(a)
    save(Path(os.fsdecode(raw + b"/\xff.png")), 40, 30, "PNG")
    save(Path(os.fsdecode(raw + b"/\xfe/x.jpg")), 30, 20, "JPEG")
    Path(os.fsdecode(raw + b"/\xfd.txt")).write_text("not an image")
    save(b / "ok.png", 64, 48, "PNG")
    out = Path(os.fsdecode(os.fsencode(tmp_path) + b"/out\xf0"))  # the output folder's name too
    for by in ("id", "sha256"):  # keys are hashed from the names, then from the content
        proc = run_cli("stats", a, b, "--out", out, "--no-figure", "--overlap-by", by)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
    images = _images(out)
    assert images.loc["\\xff.png", ["width", "height"]].tolist() == [40, 30]
    assert images.loc["\\xfe/x.jpg", ["width", "height"]].tolist() == [30, 20]
    assert "\\xfd.txt" in _problems(out)
    overlap = pd.read_csv(out / "overlap.csv")
    assert overlap.loc[overlap.input_1 == "b\\xf1", "percent"].item() == 100.0  # b's ok.png is a's ok.png
    assert set(pd.read_csv(out / "summary.csv")["input"]) == {"a", "b\\xf1"}


# --------------------------------------------------------------------------- options


def test_negative_or_huge_seed_is_a_usage_error(tmp_path):
    save(tmp_path / "a" / "x.png", 8, 8, "PNG")
    for seed in ("-1", str(2**63)):
        proc = run_cli("stats", tmp_path / "a", "--out", tmp_path / "out", "--seed", seed)
        assert_user_error(proc, "--seed")


# --------------------------------------------------------------------------- concurrent runs


def test_second_run_on_the_same_folder_exits_2_naming_the_holder(tmp_path):
    save(tmp_path / "a" / "x.png", 8, 8, "PNG")
    out = tmp_path / "out"
    with folder_lock(out, command="methbuild stats (the first run)"):
        proc = run_cli("stats", tmp_path / "a", "--out", out, "--no-figure")
    assert_user_error(proc, "in use by", f"pid {os.getpid()}")
    assert not (out / "summary.csv").exists()


# --------------------------------------------------------------------------- tampered resume state


def test_tampered_header_cache_is_read_again(tmp_path):
    src = tmp_path / "src"
    for k in range(5):
        save(src / f"im{k}.png", 20 + k, 10 + k, "PNG")
    out = tmp_path / "out"
    assert run_cli("stats", src, "--out", out, "--no-figure").returncode == 0
    truth = _images(out)
    caches = [p for p in (out / ".cache").iterdir() if p.suffix == ".json"]
    assert len(caches) == 1
    saved = json.loads(caches[0].read_text())
    for tamper in (
        lambda d: d["result"].update(w=[1] * 5),  # lying values: the checksum no longer agrees
        lambda d: d["result"].update(w=[1]),  # wrong length
        lambda d: d.update(n=4),  # wrong count
        lambda d: d["result"].pop("e"),  # wrong shape
    ):
        bad = json.loads(json.dumps(saved))
        tamper(bad)
        caches[0].write_text(json.dumps(bad))
        proc = run_cli("stats", src, "--out", out, "--no-figure")
        assert proc.returncode == 0, proc.stderr
        pd.testing.assert_frame_equal(_images(out), truth)
    caches[0].write_bytes(caches[0].read_bytes()[:20])  # truncated
    assert run_cli("stats", src, "--out", out, "--no-figure").returncode == 0
    pd.testing.assert_frame_equal(_images(out), truth)


# --------------------------------------------------------------------------- full disk


def test_disk_full_is_one_line_exit_1_and_a_rerun_completes(tmp_path, small_disk):
    src = tmp_path / "src"
    for k in range(30):
        save(src / f"im{k}.png", 20 + k, 10 + k, "PNG")
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as fh:  # fill the disk to the last block
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    out = small_disk / "stats"
    proc = run_cli("stats", src, "--out", out, "--no-figure")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "%" not in ln]  # progress bars aside
    assert len(lines) == 1 and "no space left on device" in lines[0], proc.stderr
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    for name in ("images.parquet", "summary.csv"):
        assert not (out / name).exists()
    filler.unlink()
    again = run_cli("stats", src, "--out", out, "--no-figure")
    assert again.returncode == 0, again.stderr
    assert pd.read_csv(out / "summary.csv").iloc[0]["images"] == 30
