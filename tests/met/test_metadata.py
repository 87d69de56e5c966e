"""Reading MetObjects CSVs: the real sample, and the broken copies users really have."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from methbuild.errors import UserError
from methbuild.met.metadata import MET_COLUMNS, read_met_csv
from tests.conftest import MET_DATA, assert_user_error, run_cli

SAMPLE = MET_DATA / "MetObjects_sample2000.csv"


def _write_rows(path: Path, rows: list[dict], *, encoding="utf-8-sig", sep=",", columns=MET_COLUMNS) -> Path:
    df = pd.DataFrame([{c: r.get(c, "") for c in columns} for r in rows], columns=list(columns))
    df.to_csv(path, index=False, sep=sep, encoding=encoding)
    return path


ROW = {"Object Number": "0012.3", "Is Highlight": "False", "Is Timeline Work": "True", "Is Public Domain": "True",
       "Object ID": "77", "Gallery Number": "007", "Culture": "Greek, Attic",
       "Dimensions": "H. 3 in.\nW. 4 in.", "Title": "Kylix, \"eye-cup\""}


def test_reads_the_real_sample_by_name():
    df = read_met_csv(SAMPLE)
    assert len(df) == 2000 and len(df.columns) == 54
    assert df["Object ID"].dtype == "int64"
    assert df["Is Public Domain"].dtype == bool and df["Is Public Domain"].sum() == 1947
    assert set(df["Object Number"].map(type)) == {str}
    assert df.loc[df["Object ID"] == 503046, "Dimensions"].iloc[0].count("\n") == 2  # quoted newlines


def test_strings_stay_strings_and_quoted_newlines(tmp_path):
    df = read_met_csv(_write_rows(tmp_path / "m.csv", [ROW]))
    row = df.iloc[0]
    assert row["Object Number"] == "0012.3" and row["Gallery Number"] == "007"
    assert row["Is Public Domain"] is True or row["Is Public Domain"] == True  # noqa: E712 - numpy bool
    assert not row["Is Highlight"] and row["Is Timeline Work"]
    assert row["Dimensions"] == "H. 3 in.\nW. 4 in." and row["Culture"] == "Greek, Attic"


def test_reordered_and_old_headers_are_read_by_name(tmp_path):
    cols = ("Object ID", "Title", "Is Public Domain", "Object Number")  # a short, reordered header
    df = read_met_csv(_write_rows(tmp_path / "m.csv", [ROW], columns=cols))
    assert list(df["Object ID"]) == [77] and df["Title"].iloc[0] == 'Kylix, "eye-cup"'


@pytest.mark.parametrize("kind,needle", [
    ("semicolon", "';'-delimited"),
    ("cp1252", "not UTF-8"),
    ("missing", "'Is Public Domain'"),
    ("lfs", "Git LFS pointer"),
    ("bad_bool", "must be True or False"),
    ("bad_id", "must be an integer"),
    ("empty", "empty"),
])
def test_broken_copies_are_refused_clearly(tmp_path, kind, needle):
    p = tmp_path / "m.csv"
    row = dict(ROW, Culture="Française", Title="Tête")
    if kind == "semicolon":
        _write_rows(p, [row], sep=";")
    elif kind == "cp1252":
        _write_rows(p, [row], encoding="cp1252")
    elif kind == "missing":
        _write_rows(p, [row], columns=[c for c in MET_COLUMNS if c != "Is Public Domain"])
    elif kind == "lfs":
        p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 318000000\n")
    elif kind == "bad_bool":
        _write_rows(p, [dict(row, **{"Is Public Domain": "yes"})])
    elif kind == "bad_id":
        _write_rows(p, [row, dict(row, **{"Object ID": "12a"})])
    else:
        p.write_bytes(b"")
    with pytest.raises(UserError, match=needle.replace("(", r"\(")):
        read_met_csv(p)
    out = tmp_path / "crawl"
    assert_user_error(run_cli("crawl", "--metadata", p, "--out", out, "--api-url", "http://127.0.0.1:9/x"), needle)
    assert not (out / "crawl.sqlite").exists()  # nothing was crawled


def test_missing_file_is_a_user_error(tmp_path):
    assert_user_error(run_cli("crawl", "--metadata", tmp_path / "nope.csv", "--out", tmp_path / "o"), "does not exist")
    shutil.rmtree(tmp_path / "o", ignore_errors=True)
