"""`methbuild downsample` under hostile and unlucky input (issue 13): pixel bombs, non-UTF-8 names,
negative seeds, a full disk, two runs on one folder, a tampered work file, progress log or batch."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from methbuild.downsample import Options, build
from methbuild.io.imagenet_batches import all_file_names
from methbuild.io.lock import folder_lock
from tests.conftest import assert_user_error, png_header, run_cli
from tests.downsample.imagenet_tree import make_tree


@pytest.fixture
def small_tree(tmp_path):
    src = tmp_path / "src"
    make_tree(src, n_train=4, n_val=1, oddities=False, size=(96, 72))
    return src


def _summary(out: Path) -> dict:
    return json.loads((out / "downsample.json").read_text())


def _same_batches(a: Path, b: Path) -> None:
    for name in all_file_names("pickle"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


# --------------------------------------------------------------------------- pixel bombs


def test_pixel_bomb_is_skipped_from_its_header(small_tree, tmp_path):
    d = next((small_tree / "train").iterdir())
    png_header(d / "bomb.JPEG", 100_000, 100_000)
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(d / "big.JPEG", "PNG")  # 10,000 px: over --max-pixels
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "methbuild", "downsample", small_tree, "--size", "16", "--out", out,
                           "--workers", "1", "--max-pixels", "7000", "--quiet"], capture_output=True, text=True,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)), timeout=120)
    assert proc.returncode == 0, proc.stderr
    skipped = {Path(f["file"]).name: f["error"] for f in _summary(out)["skipped"]}
    assert set(skipped) == {"bomb.JPEG", "big.JPEG"}
    assert "100000x100000 (10,000 MP), over the pixel limit" in skipped["bomb.JPEG"]
    assert "over the pixel limit" in skipped["big.JPEG"]
    assert _summary(out)["splits"]["train"]["images"] == 12


# --------------------------------------------------------------------------- non-UTF-8 names


def test_non_utf8_file_names_are_read_and_listed_escaped(small_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONIOENCODING", "utf-8:strict")  # a UTF-8 terminal that refuses undecodable bytes
    d = next((small_tree / "train").iterdir())
    raw = os.fsencode(d)
    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(raw + b"/\xff.JPEG", "JPEG")
    (Path(os.fsdecode(raw + b"/\xfe.JPEG"))).write_bytes(b"not an image")
    out = Path(os.fsdecode(os.fsencode(tmp_path) + b"/out\xf0"))  # the output folder's name too
    proc = run_cli("downsample", small_tree, "--size", "16", "--out", out, "--workers", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    s = _summary(out)
    assert s["splits"]["train"]["images"] == 13  # 12 + the readable non-UTF-8 one
    assert [f["file"].rsplit("/", 1)[1] for f in s["skipped"]] == ["\\xfe.JPEG"]
    assert "\\xfe.JPEG" in proc.stderr
    again = run_cli("downsample", small_tree, "--size", "16", "--out", out, "--workers", "1", "--quiet")
    assert again.returncode == 0 and "already complete" in again.stdout, again.stdout  # the listing hashes alike


# --------------------------------------------------------------------------- options and concurrent runs


def test_negative_or_huge_seed_is_a_usage_error(small_tree, tmp_path):
    for seed in ("-1", str(2**63)):
        assert_user_error(run_cli("downsample", small_tree, "--size", "16", "--out", tmp_path / "o", "--seed", seed),
                          "--seed")


def test_second_run_on_the_same_folder_exits_2_naming_the_holder(small_tree, tmp_path):
    out = tmp_path / "out"
    with folder_lock(out, command="methbuild downsample (the first run)"):
        proc = run_cli("downsample", small_tree, "--size", "16", "--out", out, "--quiet")
    assert_user_error(proc, "in use by", f"pid {os.getpid()}")
    assert not (out / ".downsample-work").exists()


# --------------------------------------------------------------------------- tampered output


def test_truncated_batch_or_edited_summary_of_a_finished_set_is_rebuilt(small_tree, tmp_path):
    out, clean = tmp_path / "out", tmp_path / "clean"
    for d in (out, clean):
        assert run_cli("downsample", small_tree, "--size", "16", "--out", d, "--workers", "1", "--quiet").returncode == 0
    args = ("downsample", small_tree, "--size", "16", "--out", out, "--workers", "1", "--quiet")
    batch = out / "train_data_batch_3"
    batch.write_bytes(batch.read_bytes()[:-100])
    proc = run_cli(*args)
    assert proc.returncode == 0 and "already complete" not in proc.stdout, proc.stdout
    _same_batches(out, clean)
    # a summary that was edited, or is not a summary at all, proves nothing: the set is rebuilt
    for text in (json.dumps({**_summary(out), "classes": 999}), "[1, 2]", '{"config": 5}'):
        (out / "downsample.json").write_text(text)
        proc = run_cli(*args)
        assert proc.returncode == 0 and "already complete" not in proc.stdout, (proc.stdout, proc.stderr)
        assert _summary(out)["classes"] == 3
    _same_batches(out, clean)
    assert "already complete" in run_cli(*args).stdout


# --------------------------------------------------------------------------- full disk, then a tampered work folder


def test_disk_full_then_tampered_work_folder_resumes_to_the_right_output(tmp_path, small_disk):
    src = tmp_path / "src"
    make_tree(src, n_train=30, n_val=5, oddities=False, size=(96, 72))  # 105 rows of 768 bytes at 16x16
    clean = tmp_path / "clean"
    build(Options(src=src, out=clean, size=16, workers=1, progress=False))
    # leave ~200 KB: the up-front check (work file + batches, 161 KB) passes, the work file (81 KB) fits,
    # the batches (with their means, ~140 KB) do not
    st = os.statvfs(small_disk)
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 200_000))
    out = small_disk / "out"
    args = ("downsample", src, "--size", "16", "--out", out, "--workers", "1", "--quiet")
    proc = run_cli(*args)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()] == [
        ln for ln in proc.stderr.splitlines() if "no space left on device" in ln], proc.stderr
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]  # nothing half-written
    work = out / ".downsample-work"
    assert (work / "train.u8").exists() and (work / "progress.jsonl").exists()

    # tamper: the work file cut short (its tail would read back as zeros), records of the wrong shape
    with open(work / "train.u8", "r+b") as fh:
        fh.truncate(10 * 768)
    with open(work / "progress.jsonl", "a", encoding="utf-8") as fh:
        for rec in ({"split": "train", "chunk": 0, "failed": 5, "kinds": [], "crc": 1}, [1, 2], "text",
                    {"split": "train", "chunk": "x"}, {"written": 3}):
            fh.write(json.dumps(rec) + "\n")
    filler.unlink()
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "(resumed)" in resumed.stdout
    _same_batches(out, clean)
