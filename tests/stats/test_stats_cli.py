"""`methbuild stats` end to end: outputs, printed summary, problems, resume, user errors."""

from __future__ import annotations

import os

import pandas as pd

from tests.conftest import assert_user_error, run_cli
from tests.stats.imgs import save


def make_inputs(tmp_path):
    ref = tmp_path / "refset"
    sizes = [(400, 300), (640, 480), (300, 400), (500, 500), (1024, 768)]
    for i, (w, h) in enumerate(sizes):
        save(ref / f"img{i}.{['jpg', 'png', 'gif', 'bmp', 'webp'][i]}", w, h,
             ["JPEG", "PNG", "GIF", "BMP", "WEBP"][i])
    save(ref / "sub" / "rotated.jpg", 800, 600, "JPEG", orientation=6)  # displayed 600×800: portrait
    (ref / "sub" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xdb garbage")
    (ref / "README.txt").write_text("not an image")
    data = save(ref / "whole.png", 64, 64, "PNG").read_bytes()
    (ref / "whole.png").unlink()
    (ref / "cut.png").write_bytes(data[: len(data) // 2])
    os.symlink(ref, ref / "sub" / "loop")
    csv = tmp_path / "MetH-Medium" / "MetH-Medium.csv"
    csv.parent.mkdir()
    csv.write_text("ID,Label,Image file,Width,Height,Product size,Aspect ratio,Split\n"
                   "img0,Gold,data/img0.jpg,3000,4000,12000000,0.75,train\n"
                   "77,Gold,data/77.jpg,4000,3000,12000000,1.3333,train\n"
                   "78,Silk,data/78.jpg,2000,2000,4000000,1.0,validation\n"
                   "79,Silk,data/79.jpg,5000,2500,12500000,2.0,test\n")
    return ref, csv


def test_end_to_end(tmp_path):
    ref, csv = make_inputs(tmp_path)
    out = tmp_path / "out"
    proc = run_cli("stats", ref, csv, "--out", out, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    for name in ("images.parquet", "summary.csv", "problems.csv", "figure.png", "figure.svg", "overlap.csv"):
        assert (out / name).stat().st_size > 0, name
    assert not [p for p in os.listdir(out) if ".tmp-" in p]

    images = pd.read_parquet(out / "images.parquet")
    assert list(images.columns[:7]) == ["input", "path", "width", "height", "product_size", "aspect_ratio", "format"]
    ref_rows = images[images.input == "refset"].set_index("path")
    assert len(ref_rows) == 8  # 6 images + corrupt + truncated; README and the loop are not images
    assert ref_rows.loc["sub/rotated.jpg", ["width", "height"]].tolist() == [600, 800]
    assert ref_rows.loc["img1.png", "product_size"] == 640 * 480
    assert ref_rows.loc["img0.jpg", "aspect_ratio"] == 400 / 300
    assert ref_rows.loc["cut.png", "truncated"] and ref_rows.loc["cut.png", "width"] == 64
    assert pd.isna(ref_rows.loc["sub/corrupt.jpg", "width"])

    s = pd.read_csv(out / "summary.csv").set_index("input")
    r = s.loc["refset"]
    assert (r.group, r.listed, r.images, r.unreadable, r.truncated, r.other_files) == ("reference", 8, 7, 1, 1, 1)
    assert r.formats == "JPEG:2 PNG:2 BMP:1 GIF:1 WEBP:1"
    # readable: 400×300 640×480 300×400 500×500 1024×768 600×800 64×64
    assert r.portrait_share == round(2 / 7, 6)
    assert r.share_ge_500x500 == round(3 / 7, 6)  # 500×500, 1024×768, 600×800
    assert r.mp_max == round(1024 * 768 / 1e6, 6) and r.mp_median == round(0.25, 6)
    m = s.loc["MetH-Medium"]
    assert (m.group, m.images, m.mp_mean, m.ar_median) == ("meth", 4, 10.125, round((4 / 3 + 1.0) / 2, 6))

    ov = pd.read_csv(out / "overlap.csv")
    got = {(a, b): p for a, b, p in zip(ov.input_1, ov.input_2, ov.percent)}
    assert got == {("refset", "MetH-Medium"): 12.5, ("MetH-Medium", "refset"): 25.0}  # img0 in both

    problems = pd.read_csv(out / "problems.csv")
    text = "\n".join(problems.path + ": " + problems.problem)
    for needle in ("README.txt: not an image", "sub/loop: symlink", "sub/corrupt.jpg: unreadable",
                   "cut.png: truncated"):
        assert needle in text, text

    # The printed summary names every input and the overlap table.
    assert "refset" in proc.stdout and "MetH-Medium" in proc.stdout and "overlap by id" in proc.stdout
    assert "4 problem(s)" in proc.stdout


def test_rerun_resumes_from_the_cache_and_fresh_rereads(tmp_path):
    ref, _ = make_inputs(tmp_path)
    out = tmp_path / "out"
    assert run_cli("stats", ref, "--out", out, "--name", "R").returncode == 0
    cached = sorted(os.listdir(out / ".cache"))
    assert cached and all(c.endswith(".json") for c in cached)
    before = pd.read_parquet(out / "images.parquet")
    # An interrupted run: a chunk result never written, a temporary file left behind.
    (out / ".cache" / cached[0]).unlink()
    (out / ".cache" / f".{cached[0]}.tmp-x1y2").write_text('{"partial')
    assert run_cli("stats", ref, "--out", out, "--name", "R").returncode == 0
    assert sorted(os.listdir(out / ".cache")) == cached  # recomputed, the stale temporary file cleaned
    pd.testing.assert_frame_equal(pd.read_parquet(out / "images.parquet"), before)
    # A cached chunk is trusted: a rerun does not read the files again (an interrupted run resumes).
    for p in ref.rglob("*.jpg"):
        if not p.is_symlink():
            p.write_bytes(b"")
    proc = run_cli("stats", ref, "--out", out, "--name", "Renamed", "--group", "meth")
    assert proc.returncode == 0, proc.stderr
    after = pd.read_parquet(out / "images.parquet")
    assert after.drop(columns="input").equals(before.drop(columns="input"))
    assert pd.read_csv(out / "summary.csv").group.tolist() == ["meth"]
    assert not (out / "overlap.csv").exists()
    proc = run_cli("stats", ref, "--out", out, "--fresh")
    assert proc.returncode == 0, proc.stderr
    assert pd.read_csv(out / "summary.csv").unreadable.tolist() == [3]  # two emptied JPEGs + the corrupt one


def test_sample_flag_and_names(tmp_path):
    ref, csv = make_inputs(tmp_path)
    out = tmp_path / "out"
    proc = run_cli("stats", ref, csv, "--sample", "3", "--seed", "1", "--name", "A", "--name", "B",
                   "--group", "meth", "--group", "reference", "--no-figure", "--out", out)
    assert proc.returncode == 0, proc.stderr
    s = pd.read_csv(out / "summary.csv").set_index("input")
    assert s.loc["A", ["listed", "sampled", "group"]].tolist() == [8, 3, "meth"]
    assert s.loc["B", ["listed", "sampled", "group"]].tolist() == [4, 3, "reference"]
    assert not (out / "figure.png").exists()
    # The overlap uses every image, not the sample.
    ov = pd.read_csv(out / "overlap.csv")
    assert ov[ov.input_1 == "A"].images_1.tolist() == [8]


def test_user_errors(tmp_path):
    ref, csv = make_inputs(tmp_path)
    assert_user_error(run_cli("stats", tmp_path / "missing"), "does not exist")
    assert_user_error(run_cli("stats", ref, csv, "--name", "only-one", "--out", tmp_path / "o"), "--name")
    assert_user_error(run_cli("stats", ref, csv, "--name", "x", "--name", "x", "--out", tmp_path / "o"),
                      "two inputs are named")
    assert_user_error(run_cli("stats", ref, "--group", "other"), "--group")
    (tmp_path / "file").write_text("x")
    assert_user_error(run_cli("stats", ref, "--out", tmp_path / "file"), "--out")
    assert_user_error(run_cli("stats", tmp_path / "file"), "neither a folder nor")
    met = tmp_path / "MetObjects.csv"
    met.write_text("Object ID,Title\n1,x\n")
    assert_user_error(run_cli("stats", met, "--out", tmp_path / "o2"), "no width and height")
    assert not (tmp_path / "o2" / "summary.csv").exists()
    assert_user_error(run_cli("stats", ref, "--sample", "-1"), "--sample")
    assert_user_error(run_cli("stats"), "INPUT")


def test_help():
    proc = run_cli("stats", "--help")
    assert proc.returncode == 0 and "--overlap-by" in proc.stdout and "Usage:" in proc.stdout
