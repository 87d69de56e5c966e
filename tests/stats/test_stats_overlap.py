"""Overlap numbers (paper 000, Table 1) on constructed cases."""

from __future__ import annotations

import pytest

from methbuild.errors import UserError
from methbuild.stats.collect import collect
from methbuild.stats.overlap import overlap_table
from tests.stats.imgs import gif_bytes


def pct(table, a, b):
    row = table[(table.input_1 == a) & (table.input_2 == b)]
    assert len(row) == 1
    return float(row.percent.iloc[0])


def test_overlap_table_counts_each_ordered_pair():
    t = overlap_table(["A", "B", "C"], [[str(i) for i in range(1, 11)], [str(i) for i in range(6, 21)], ["99", None]])
    assert len(t) == 6
    assert pct(t, "A", "B") == 50.0  # 6..10 of 1..10
    assert pct(t, "B", "A") == pytest.approx(33.33)  # 5 of 15
    assert pct(t, "A", "C") == 0.0
    row = t[(t.input_1 == "C") & (t.input_2 == "A")].iloc[0]
    assert row.images_1 == 1  # the image without a key is left out


def test_duplicates_of_the_first_count_each_time():
    t = overlap_table(["A", "B"], [["1", "1", "2", "3"], ["1"]])
    assert pct(t, "A", "B") == 50.0 and pct(t, "B", "A") == 100.0


def _folder(root, names, content=lambda n: gif_bytes(3, 4)):
    root.mkdir(parents=True)
    for n in names:
        (root / n).write_bytes(content(n))
    return root


def test_folder_and_manifest_compare_by_object_id(tmp_path):
    meth = _folder(tmp_path / "MetH-Medium" / "data", [f"{i}.jpg" for i in (10, 11, 12, 13)])
    csv = tmp_path / "MetH-Period.csv"
    csv.write_text("ID,Label,Image file,Width,Height\n" + "".join(
        f"{i},1700,data/{i}.jpg,600,800\n" for i in (12, 13, 14, 15, 16, 17, 18, 19)))
    rep = collect([meth, csv], names=["Medium", "Period"], sample=None, progress=False, figure=False)
    assert pct(rep.overlap, "Medium", "Period") == 50.0
    assert pct(rep.overlap, "Period", "Medium") == 25.0


def test_overlap_by_name_and_by_content(tmp_path):
    a = _folder(tmp_path / "a", ["x.gif", "y.gif", "z.gif", "w.gif"], lambda n: gif_bytes(ord(n[0]) - 100, 5))
    b = _folder(tmp_path / "b", ["x.png", "renamed.gif", "q.gif"], lambda n: gif_bytes(
        {"x.png": 1, "renamed.gif": ord("y") - 100, "q.gif": 2}[n], 5))
    by_name = collect([a, b], sample=None, progress=False, figure=False, overlap_by="name").overlap
    assert pct(by_name, "a", "b") == 25.0  # x only
    by_content = collect([a, b], sample=None, progress=False, figure=False, overlap_by="sha256").overlap
    assert pct(by_content, "a", "b") == 25.0  # y's bytes live on as renamed.gif
    assert pct(by_content, "b", "a") == pytest.approx(33.33)


def test_sha256_of_a_manifest_uses_its_column_or_its_files(tmp_path):
    a = _folder(tmp_path / "a", ["1.gif", "2.gif"], lambda n: gif_bytes(int(n[0]), 1))
    import hashlib

    digest = hashlib.sha256(gif_bytes(1, 1)).hexdigest()
    with_col = tmp_path / "crawl.csv"
    with_col.write_text(f"object_id,image_file,width,height,sha256\n7,images/7.gif,1,1,{digest.upper()}\n")
    t = collect([a, with_col], sample=None, progress=False, figure=False, overlap_by="sha256").overlap
    assert pct(t, "a", "crawl") == 50.0 and pct(t, "crawl", "a") == 100.0
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "9.gif").write_bytes(gif_bytes(2, 1))
    files = tmp_path / "files.csv"
    files.write_text("ID,Image file,Width,Height\n9,data/9.gif,2,1\n10,data/missing.gif,2,1\n")
    rep = collect([a, files], sample=None, progress=False, figure=False, overlap_by="sha256")
    assert pct(rep.overlap, "files", "a") == 100.0  # the missing file has no key
    assert rep.problems["problem"].str.contains("not compared by content").sum() == 1


def test_manifest_without_id_or_files_cannot_compare(tmp_path):
    m = tmp_path / "sizes.csv"
    m.write_text("width,height\n1,2\n")
    with pytest.raises(UserError, match="no ID or image file column"):
        collect([m, m.parent], names=["m", "f"], progress=False, figure=False)
