"""Listing folders, seeded sampling before probing, manifests, read_sizes."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import methbuild.stats.headers as headers
import methbuild.stats.inputs as inputs
from methbuild.errors import UserError
from methbuild.stats.inputs import list_images, read_manifest, read_sizes, sample_positions
from tests.stats.imgs import gif_bytes, save


def make_tree(root):
    save(root / "b" / "2.jpg", 30, 20, "JPEG")
    save(root / "b" / "1.png", 10, 40, "PNG")
    save(root / "a.JPG", 50, 50, "JPEG", orientation=6)
    save(root / "c" / "d" / "deep.webp", 7, 9, "WEBP")
    (root / "notes.txt").write_text("hello")
    (root / ".hidden").write_text("x")
    save(root / ".thumbnails" / "t.jpg", 8, 8, "JPEG")  # hidden folders are skipped like hidden files
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    return root


def test_listing_is_sorted_recursive_and_skips_non_images(tmp_path):
    lst = list_images(make_tree(tmp_path))
    assert [lst.relpath(i) for i in range(len(lst))] == ["a.JPG", "broken.jpg", "b/1.png", "b/2.jpg", "c/d/deep.webp"]
    assert lst.other_files == 1
    assert ("notes.txt", "not an image file name: skipped") in lst.problems
    assert lst.stems() == ["a", "broken", "1", "2", "deep"]


def test_symlink_loops_are_reported_not_followed(tmp_path):
    root = make_tree(tmp_path / "data")
    os.symlink(root, root / "b" / "up")  # b/up -> data: a loop
    os.symlink(root / "c", root / "c-again")  # a second way into c: listed once
    os.symlink(tmp_path / "nowhere", root / "dangling.jpg")
    outside = tmp_path / "outside"
    save(outside / "o.png", 5, 6, "PNG")
    os.symlink(outside, root / "linked")  # a symlinked folder elsewhere is followed
    lst = list_images(root)
    paths = [lst.relpath(i) for i in range(len(lst))]
    assert paths.count("c/d/deep.webp") + paths.count("c-again/d/deep.webp") == 1
    assert "linked/o.png" in paths
    problems = dict(lst.problems)
    assert "loop" in problems["b/up"]
    assert "broken symlink" in problems["dangling.jpg"]


def test_unreadable_folder_is_reported(tmp_path, monkeypatch):
    # Tests run as root here, so chmod cannot make a folder unreadable: make scandir refuse one instead.
    root = make_tree(tmp_path)
    real = os.scandir

    def scandir(path):
        if str(path).endswith(os.sep + "b"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(inputs.os, "scandir", scandir)
    lst = list_images(root)
    assert [lst.relpath(i) for i in range(len(lst))] == ["a.JPG", "broken.jpg", "c/d/deep.webp"]
    assert ("b", "cannot list folder: Permission denied") in lst.problems


def test_read_sizes_of_a_folder(tmp_path):
    df = read_sizes(make_tree(tmp_path), progress=False).set_index("path")
    assert df.loc["a.JPG", ["width", "height", "format"]].tolist() == [50, 50, "JPEG"]
    assert df.loc["b/1.png", ["width", "height", "format"]].tolist() == [10, 40, "PNG"]
    assert df.loc["c/d/deep.webp", ["width", "height"]].tolist() == [7, 9]
    assert df.loc["broken.jpg", "error"].startswith("not a readable image")
    assert pd.isna(df.loc["broken.jpg", "width"])
    assert df["error"].isna().sum() == 4


def test_exif_rotated_photo_in_a_folder_is_portrait(tmp_path):
    save(tmp_path / "photo.jpg", 400, 300, "JPEG", orientation=6)
    row = read_sizes(tmp_path, progress=False).iloc[0]
    assert (row.width, row.height) == (300, 400)


def test_sample_is_seeded_and_drawn_before_any_header_is_read(tmp_path, monkeypatch):
    for i in range(300):
        (tmp_path / f"{i:03d}.gif").write_bytes(gif_bytes(1 + i, 2))
    opened = []
    real_open = os.open

    def counting_open(path, *args, **kw):  # every file the header reader opens
        if os.fsdecode(path).startswith(str(tmp_path)):
            opened.append(os.fsdecode(path))
        return real_open(path, *args, **kw)

    monkeypatch.setattr(headers.os, "open", counting_open)
    df = read_sizes(tmp_path, sample=25, seed=7, workers=1, progress=False)
    assert len(df) == 25 and len(opened) == 25  # only the sampled files were opened
    assert sorted(os.path.basename(p) for p in opened) == sorted(df["path"])
    assert (df["width"] == df["path"].str[:3].astype(int) + 1).all()
    again = read_sizes(tmp_path, sample=25, seed=7, workers=1, progress=False)
    assert again["path"].tolist() == df["path"].tolist()
    other = read_sizes(tmp_path, sample=25, seed=8, workers=1, progress=False)
    assert other["path"].tolist() != df["path"].tolist()


def test_sample_positions():
    assert sample_positions(10, None, 0).tolist() == list(range(10))
    assert sample_positions(10, 20, 0).tolist() == list(range(10))
    p = sample_positions(1_000_000, 1000, 3)
    assert len(set(p.tolist())) == 1000 and (np.diff(p) > 0).all() and p.max() < 1_000_000
    assert (p == sample_positions(1_000_000, 1000, 3)).all()


def test_pool_gives_the_same_table_as_one_process(tmp_path):
    n = inputs.INLINE_BELOW + 150  # enough files to use the process pool
    for i in range(n):
        (tmp_path / f"{i:05d}.gif").write_bytes(gif_bytes(1 + i % 97, 1 + i % 13))
    (tmp_path / "bad.gif").write_bytes(b"GIF89a")
    one = read_sizes(tmp_path, workers=1, progress=False)
    two = read_sizes(tmp_path, workers=2, progress=False)
    pd.testing.assert_frame_equal(one, two)
    assert len(one) == n + 1 and one["error"].notna().sum() == 1


def test_meth_csv_manifest(tmp_path):
    csv = tmp_path / "MetH-Medium.csv"
    csv.write_text("\ufeffID,Label,Image file,Width,Height,Product size,Aspect ratio,Split\n"
                   "45734,Gold,data/45734.jpg,3000,4000,12000000,0.75,train\n"
                   "47533,Silk,data/47533.jpg,5000,2000,10000000,2.5,test\n"
                   "1,Silk,data/1.jpg,,,,,test\n", encoding="utf-8")
    df = read_sizes(csv)
    assert df["id"].tolist() == ["45734", "47533", "1"]
    assert df["path"].tolist() == ["data/45734.jpg", "data/47533.jpg", "data/1.jpg"]
    assert df["width"].tolist()[:2] == [3000, 5000] and df["height"].tolist()[:2] == [4000, 2000]
    assert df["format"].tolist()[:2] == ["JPEG", "JPEG"]
    assert df["error"].tolist()[:2] == [None, None] and "no width/height" in df["error"][2]
    assert len(read_sizes(csv, sample=2, seed=1)) == 2


def test_crawl_manifest_parquet(tmp_path):
    pq = tmp_path / "objects.parquet"
    pd.DataFrame({"object_id": [1, 2, 3], "status": ["done", "done", "failed"],
                  "image_file": ["images/1.jpg", "images/2.png", ""], "width": [100, 700, None],
                  "height": [50, 800, None], "bytes": [1, 2, 0], "sha256": ["a", "b", ""],
                  "url": ["u"] * 3, "error": ["", "", "HTTP 404"]}).to_parquet(pq)
    df = read_sizes(pq)
    assert df["id"].tolist() == ["1", "2", "3"]
    gaps = tmp_path / "gaps.parquet"
    pd.DataFrame({"object_id": [45734.0, None], "width": [1, 2], "height": [3, 4]}).to_parquet(gaps)
    assert read_sizes(gaps)["id"].tolist() == ["45734", ""]
    assert df["width"].tolist()[:2] == [100, 700]
    assert df["format"].tolist()[:2] == ["JPEG", "PNG"]
    assert "status failed: HTTP 404" in df["error"][2]


def test_manifest_without_sizes_is_a_user_error(tmp_path):
    met = tmp_path / "MetObjects.csv"
    met.write_text("Object Number,Is Public Domain,Object ID\n1.2,True,45734\n")
    with pytest.raises(UserError, match="no width and height columns"):
        read_manifest(met)
    semi = tmp_path / "resaved.csv"
    semi.write_text("ID;Width;Height\n1;2;3\n")
    with pytest.raises(UserError, match="';'-separated"):
        read_manifest(semi)
    cp = tmp_path / "cp1252.csv"
    cp.write_bytes("ID,Width,Height,Title\n1,2,3,Caf\xe9\n".encode("cp1252"))
    with pytest.raises(UserError, match="not UTF-8"):
        read_manifest(cp)


def test_fifo_named_like_an_image_is_skipped_not_opened(tmp_path):
    save(tmp_path / "ok.png", 3, 4, "PNG")
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it for reading would block forever
    lst = list_images(tmp_path)
    assert [lst.relpath(i) for i in range(len(lst))] == ["ok.png"]
    assert ("pipe.jpg", "not a regular file: skipped") in lst.problems
    with pytest.raises(ValueError, match="cannot read"):
        headers.read_header(tmp_path / "pipe.jpg")  # even asked directly, it does not hang
