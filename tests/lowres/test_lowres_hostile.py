"""`methbuild lowres` under hostile and unlucky input (issue 13): pixel bombs, non-UTF-8 names, a full
disk, two runs on one folder, a tampered lowres.csv or LR file. Every test goes through the command."""

from __future__ import annotations

import csv
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from methbuild.io.lock import folder_lock
from methbuild.io.lowres_png import png_size
from tests.conftest import assert_user_error, png_header, resize_disk, run_cli
from tests.lowres.images import natural


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "lowres.csv", newline="", encoding="utf-8") as fh:  # always valid UTF-8
        return {r["stem"]: r for r in csv.DictReader(fh)}


def _limit_memory(limit: int):
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return set_limit


# --------------------------------------------------------------------------- pixel bombs


def test_pixel_bomb_is_a_failed_row_checked_before_any_allocation(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    bomb = png_header(src / "bomb.png", 100_000, 100_000)
    assert bomb.stat().st_size < 100
    Image.fromarray(natural(64, 48)).save(src / "good.png")
    out = tmp_path / "out"
    # 3 GB of address space: the 30 GB buffer of the old code could not even be reserved, and the message
    # must name the limit (not a MemoryError).
    proc = subprocess.run([sys.executable, "-m", "methbuild", "lowres", src, "--out", out, "--workers", "1",
                           "--quiet"], capture_output=True, text=True, preexec_fn=_limit_memory(3 << 30),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = _rows(out)
    assert rows["bomb"]["status"] == "failed"
    assert "over the pixel limit of 300 MP" in rows["bomb"]["error"], rows["bomb"]["error"]
    assert rows["good"]["status"] == "written"  # the batch went on
    assert not (out / "X2" / "bomb.png").exists()


def test_default_pixel_limit_is_the_crawlers():
    from methbuild.io.imageinfo import DEFAULT_MAX_PIXELS
    from methbuild.met.crawl import DEFAULT_PIXEL_LIMIT

    assert DEFAULT_MAX_PIXELS == DEFAULT_PIXEL_LIMIT == 300_000_000


def test_max_pixels_option(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(natural(64, 48)).save(src / "a.png")  # 3,072 pixels
    Image.fromarray(natural(32, 32)).save(src / "b.png")  # 1,024 pixels
    out = tmp_path / "out"
    proc = run_cli("lowres", src, "--out", out, "--max-pixels", "2000", "--scales", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = _rows(out)
    assert rows["a"]["status"] == "failed" and "pixel limit" in rows["a"]["error"]
    assert rows["b"]["status"] == "written"
    assert run_cli("lowres", src, "--out", out, "--max-pixels", "0").returncode == 2
    assert "--max-pixels" in run_cli("lowres", "--help").stdout


# --------------------------------------------------------------------------- non-UTF-8 names


def test_non_utf8_file_name_is_kept_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONIOENCODING", "utf-8:strict")  # a UTF-8 terminal that refuses undecodable bytes
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(natural(64, 48, seed=1)).save(src / "ok.png")
    odd = os.fsencode(src) + b"/\xff\xfe.png"
    Image.fromarray(natural(64, 48, seed=2)).save(odd)
    out = Path(os.fsdecode(os.fsencode(tmp_path) + b"/out\xf0"))  # the output folder's name too
    proc = run_cli("lowres", src, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    text = (out / "lowres.csv").read_bytes().decode("utf-8")  # valid UTF-8 for every reader
    assert "\\xff\\xfe.png" in text
    rows = _rows(out)
    assert rows["\\xff\\xfe"]["status"] == "written" and rows["\\xff\\xfe"]["X2_file"] == "X2/\\xff\\xfe.png"
    # the LR file carries the very bytes of the source's name, and holds that image
    lr = os.fsencode(out / "X2") + b"/\xff\xfe.png"
    assert png_size(lr) == (32, 24)
    with Image.open(lr) as a, Image.open(out / "X2" / "ok.png") as b:
        assert np.asarray(a).tobytes() != np.asarray(b).tobytes()
    again = run_cli("lowres", src, "--out", out, "--quiet")
    assert again.returncode == 0 and "0 written, 2 already complete" in again.stdout, again.stdout


# --------------------------------------------------------------------------- full disk


def test_disk_full_exits_1_and_a_rerun_completes(tmp_path, small_disk):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):  # noise does not compress: X2 alone is ~0.6 MB per image
        Image.fromarray(rng.integers(0, 256, (768, 1024, 3), dtype=np.uint8)).save(src / f"n{k}.png",
                                                                                   compress_level=0)
    out = small_disk / "lr"
    proc = run_cli("lowres", src, "--out", out, "--workers", "1", "--quiet")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "no space left on device" in proc.stderr.lower(), proc.stderr
    # nothing half-written under a final name, no temporary file left
    for p in out.rglob("*.png"):
        assert png_size(p) is not None, p
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    resize_disk(small_disk, "16m")
    again = run_cli("lowres", src, "--out", out, "--workers", "1", "--quiet")
    assert again.returncode == 0, again.stderr
    assert all(r["status"] in ("written", "already complete") for r in _rows(out).values())


# --------------------------------------------------------------------------- concurrent runs


def test_second_run_on_the_same_folder_exits_2_naming_the_holder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(natural(64, 48)).save(src / "a.png")
    out = tmp_path / "out"
    with folder_lock(out, command="methbuild lowres (the first run)"):
        proc = run_cli("lowres", src, "--out", out, "--quiet")
    assert_user_error(proc, "in use by", f"pid {os.getpid()}")
    assert not (out / "lowres.csv").exists()
    assert run_cli("lowres", src, "--out", out, "--quiet").returncode == 0  # released with its holder


# --------------------------------------------------------------------------- tampered resume state


def test_lying_lowres_csv_and_replaced_lr_file_are_redone(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(natural(64, 48, seed=3)).save(src / "a.png")
    Image.fromarray(natural(80, 64, seed=4)).save(src / "b.png")
    out = tmp_path / "out"
    assert run_cli("lowres", src, "--out", out, "--quiet").returncode == 0
    truth = _rows(out)
    good_x4 = (out / "X4" / "b.png").read_bytes()

    # lies a size check cannot see: bands 3 -> 1, width 64 -> 65 (the same crop box)
    rows = list(csv.DictReader(open(out / "lowres.csv", newline="", encoding="utf-8")))
    for r in rows:
        if r["stem"] == "a":
            r["bands"], r["width"] = "1", "65"
    with open(out / "lowres.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    # an LR file replaced by another whole PNG of the right size, newer than its source
    Image.fromarray(np.zeros((16, 20, 3), np.uint8)).save(out / "X4" / "b.png")

    proc = run_cli("lowres", src, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    fixed = _rows(out)
    assert (fixed["a"]["bands"], fixed["a"]["width"]) == (truth["a"]["bands"], truth["a"]["width"]) == ("3", "64")
    assert (out / "X4" / "b.png").read_bytes() == good_x4

    # a table that is not one at all: ignored, every image checked again, nothing redone needlessly
    (out / "lowres.csv").write_bytes(b"\x00\xffnot,a\ncsv")
    proc = run_cli("lowres", src, "--out", out, "--quiet")
    assert proc.returncode == 0 and "0 written, 2 already complete" in proc.stdout, (proc.stdout, proc.stderr)
    assert (out / "X4" / "b.png").read_bytes() == good_x4
