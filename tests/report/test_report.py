"""`methbuild report`: the data dict (counts, tables, files) and the page in a real browser."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from methbuild.report import build_report
from tests.conftest import assert_user_error, run_cli
from tests.report import makers
from tests.report.browser import inspect_page

SECTION_IDS = ["header", "labels", "examples", "geometry", "bucketing", "provenance", "reproduce"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every kind of SRC, made once, and its report."""
    root = tmp_path_factory.mktemp("report")
    src = {
        "medium": makers.meth_dataset(root / "datasets", "meth-medium"),
        "period": makers.meth_dataset(root / "datasets", "meth-period", per_class=(2, 1, 1), ids_from=1002,
                                      duplicate=False),
        "sr": makers.meth_dataset(root / "datasets", "meth-sr", per_class=(2, 0, 3), ids_from=5000, duplicate=False,
                                  lowres=True),
        "ultramnist": makers.ultramnist(root),
        "imagenet": makers.imagenet(root),
        "crawl": makers.crawl(root),
    }
    reports = {}
    for key, folder in src.items():
        against = [src["period"]] if key == "medium" else []
        reports[key] = build_report(folder, against=against, per_class=3, seed=1, progress=False, workers=1)
    return root, src, reports


def _csv(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / f"{folder.name}.csv", dtype={"Label": str}, keep_default_na=False)


# --------------------------------------------------------------------------------------------- the data

def test_meth_header_counts_and_croissant(built):
    _, src, reports = built
    d = reports["medium"].data
    csv = _csv(src["medium"])
    assert d["header"]["total"] == len(csv)
    assert {c["split"]: c["images"] for c in d["header"]["counts"]} == csv["Split"].value_counts().to_dict()
    fields = {f["name"]: f["value"] for f in d["header"]["fields"]}
    assert fields["Recipe and seed"].startswith("meth-medium, seed 0")
    assert fields["Version"] == "1.0.0" and "creativecommons.org" in fields["Licence"]
    cro = d["header"]["croissant"]
    assert cro["valid"] is True, cro
    assert {r["name"] for r in cro["record_sets"]} == {"records", "images"}
    assert all(r["first_record_seconds"] < 30 for r in cro["record_sets"]), cro


def test_meth_labels_table_is_the_csv_crosstab(built):
    _, src, reports = built
    lab = reports["medium"].data["labels"]
    csv = _csv(src["medium"])
    ct = pd.crosstab(csv["Label"], csv["Split"])
    assert lab["splits"] == ["train", "validation", "test"]
    assert [r["class"] for r in lab["rows"]] == sorted(makers.MEDIUM_CLASSES)
    for r in lab["rows"]:
        assert r["counts"] == [int(ct.at[r["class"], s]) for s in lab["splits"]]
    assert lab["totals"] == [int((csv["Split"] == s).sum()) for s in lab["splits"]]
    assert (reports["medium"].index.parent / lab["chart"]).is_file()


def test_period_year_histogram_uses_50_year_bins(built):
    _, src, reports = built
    lab = reports["period"].data["labels"]
    csv = _csv(src["period"])
    y = lab["years"]
    assert y["edges"] == list(range(1500, 1901, 50))
    assert sum(sum(v) for v in y["counts"].values()) == len(csv)
    assert [r["class"] for r in lab["rows"]][0] == "1500-1549"
    assert y["min"] == 1510 and y["max"] == 1890


def test_examples_are_seeded_per_class_and_link_to_the_originals(built, tmp_path):
    _, src, reports = built
    ex = reports["medium"].data["examples"]
    assert [g["class"] for g in ex["groups"]] == sorted(makers.MEDIUM_CLASSES)
    out = reports["medium"].index.parent
    for g in ex["groups"]:
        assert len(g["items"]) == 3  # --per-class 3
        for it in g["items"]:
            assert it["label"] == g["class"]
            assert (out / it["thumb"]).is_file() and max(it["thumb_width"], it["thumb_height"]) <= 160
            assert (out / it["href"]).resolve() == (src["medium"] / "data" / f"{it['id']}.jpg").resolve()
            assert it["alt"]
    # the same seed picks the same images; another seed other ones
    again = build_report(src["medium"], tmp_path / "a", per_class=3, seed=1, progress=False, workers=1)
    other = build_report(src["medium"], tmp_path / "b", per_class=3, seed=2, progress=False, workers=1)
    ids = lambda r: [[i["id"] for i in g["items"]] for g in r.data["examples"]["groups"]]  # noqa: E731
    assert ids(again) == ids(reports["medium"])
    assert ids(other) != ids(reports["medium"])


def test_geometry_bucketing_provenance_reproduce(built):
    _, src, reports = built
    d = reports["medium"].data
    csv = _csv(src["medium"])
    g = d["geometry"]
    assert [r["dataset"] for r in g["summary"]] == ["MetH-Medium", "MetH-Period"]
    assert g["summary"][0]["images"] == len(csv)
    assert g["summary"][0]["mp_max"] == pytest.approx((csv["Width"] * csv["Height"]).max() / 1e6)
    ext = {x["what"]: x for x in g["extremes"]}
    assert ext["most landscape (widest)"]["width"] == 2400 and ext["most landscape (widest)"]["height"] == 600
    b = d["bucketing"]
    assert sum(r["images"] for r in b["buckets"]) == len(csv)
    assert b["padding"]["b2b"] <= b["padding"]["equal_count"] + 1e-9 <= b["padding"]["one_bucket"] + 1e-9
    assert b["curve"]["chosen"] == 4 and 4 in b["curve"]["m"]
    pv = d["provenance"]
    assert pv["duplicates"]["groups_total"] == 1 and pv["duplicates"]["groups"][0]["images"] == 2
    ov = pv["overlaps"][0]
    period_ids = set(_csv(src["period"])["ID"])
    assert ov["other"] == "MetH-Period" and ov["by_id"] == len(set(csv["ID"]) & period_ids) > 0
    assert pv["problems_total"] == 0
    rep = d["reproduce"]
    assert rep["sha256"] == hashlib.sha256((src["medium"] / "MetH-Medium.csv").read_bytes()).hexdigest()
    assert any(c.startswith("methbuild build --manifest MetH-Medium/MetH-Medium.csv") for c in rep["commands"])


def test_sr_crops_match_our_own_bicubic(built):
    _, _, reports = built
    sr = reports["sr"].data["examples"]["sr"]
    assert sr and all("error" not in s for s in sr)
    for s in sr:
        assert [x["scale"] for x in s["scales"]] == [2, 4, 8, 16]
        for x in s["scales"]:
            # the shipped LR equals (or is within libvips rounding of) the HR's own bicubic reduction
            assert x["psnr_vs_bicubic"] == "∞" or x["psnr_vs_bicubic"] > 50, x
            assert x["lr_side"] * x["scale"] == s["side"]
    assert reports["sr"].data["labels"]["note"].startswith("MetH-SR has no labels")


def test_ultramnist_boxes_and_sums(built):
    _, src, reports = built
    d = reports["ultramnist"].data
    digits = pd.concat([pd.read_csv(src["ultramnist"] / f"{s}_digits.csv", dtype={"id": str})
                        for s in ("train", "test")])
    sums = pd.concat([pd.read_csv(src["ultramnist"] / f"{s}.csv", dtype={"id": str}) for s in ("train", "test")])
    groups = d["examples"]["groups"]
    assert [g["class"] for g in groups] == ["train", "test"]
    for g in groups:
        for it in g["items"]:
            mine = digits[digits["id"] == it["id"]]
            assert sorted(x["digit"] for x in it["digits"]) == sorted(mine["digit"])
            assert sum(x["digit"] for x in it["digits"]) == int(sums.loc[sums["id"] == it["id"], "digit_sum"].iloc[0])
    assert "no padding" in d["bucketing"]["note"]


def test_imagenet_and_crawl(built):
    _, _, reports = built
    im = reports["imagenet"].data
    assert im["labels"]["classes"] == 3 and im["header"]["total"] == 63
    assert im["provenance"]["duplicates"]["groups_total"] >= 1  # row 5 repeats row 2; val repeats train rows
    cr = reports["crawl"].data
    reasons = {r["reason"]: r["objects"] for r in cr["provenance"]["crawl"]["reasons"]}
    assert reasons == {"downloaded": 5, "404 (not found)": 1, "refused host": 1, "corrupt (undecodable image)": 1}
    assert cr["provenance"]["crawl"]["retries"] == 2
    assert {r["class"] for r in cr["labels"]["rows"]} == {"Arms and Armor", "Asian Art"}


# ------------------------------------------------------------------------------------------- the browser

@pytest.mark.parametrize("kind", ["medium", "sr", "ultramnist", "imagenet", "crawl"])
def test_page_in_headless_chromium(built, kind, tmp_path):
    _, _, reports = built
    r = reports[kind]
    page = inspect_page(r.index, tmp_path)
    assert page["errors"] == [], page["errors"]
    assert page["sections"] == SECTION_IDS
    assert page["toc"] == [f"#{s}" for s in SECTION_IDS]
    assert page["scripts"] == 0 and page["tables"] >= 3
    assert page["images"], "no image on the page"
    for i in page["images"]:
        assert i["complete"] and i["naturalWidth"] > 0, i
        assert i["alt"], i
    assert all(u.startswith(("file://", "about:", "data:")) for u in page["requests"]), page["requests"]
    shot = Path(page["screenshot"])
    assert shot.is_file() and shot.stat().st_size > 10_000
    # what the dict says is what the page shows
    assert f"{r.data['header']['total']:,}" in page["text"]
    for row in r.data["labels"]["rows"][:5]:
        assert row["class"] in page["text"]


# ----------------------------------------------------------------------------------------------- the CLI

def test_cli_writes_atomically_and_prints_the_path(built, tmp_path):
    _, src, _ = built
    out = tmp_path / "rep"
    proc = run_cli("report", src["period"], "--out", out, "--quiet", "--per-class", "2")
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("report of MetH-Period") and last.endswith(str(out / "index.html"))
    (out / "stale.txt").write_text("from an older report")
    proc = run_cli("report", src["period"], "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert not (out / "stale.txt").exists()  # replaced as a whole
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".rep")) == []
    data = json.loads((out / "report.json").read_text())
    assert data["examples"]["per_class"] == 8


def test_cli_bad_input_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_user_error(run_cli("report", tmp_path / "empty"), "is not a dataset")
    assert_user_error(run_cli("report", tmp_path / "missing"), "does not exist")
    assert not (tmp_path / "empty" / "report").exists()


def test_cli_help():
    proc = run_cli("report", "--help")
    assert proc.returncode == 0 and "--per-class" in proc.stdout and "--against" in proc.stdout
    assert "static HTML page" in proc.stdout


def test_plan_from_methbuild_buckets(built, tmp_path):
    _, src, _ = built
    csv = src["medium"] / "MetH-Medium.csv"
    proc = run_cli("buckets", csv, "--out", tmp_path / "plan", "-K", "2", "-M", "2", "--memory-budget", "300GB",
                   "--no-plot")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    r = build_report(src["medium"], tmp_path / "rep", plan=tmp_path / "plan", progress=False, workers=1)
    b = r.data["bucketing"]
    assert b["source"] == "PLAN plan" and b["settings"]["superbuckets"] == 2 and b["settings"]["buckets"] == 2
    assert [x["images"] for x in b["buckets"]] == [x["images"] for x in plan["buckets"]]
    assert b["curve"]["chosen"] == 2
    assert_user_error(run_cli("report", src["medium"], "--plan", tmp_path / "nope", "--out", tmp_path / "r2"),
                      "--plan")
    assert not (tmp_path / "r2").exists()


def test_against_must_be_a_dataset(built, tmp_path):
    _, src, _ = built
    (tmp_path / "junk").mkdir()
    assert_user_error(run_cli("report", src["medium"], "--against", tmp_path / "junk", "--out", tmp_path / "r"),
                      "is not a dataset")
    assert not (tmp_path / "r").exists()


def test_out_never_replaces_the_dataset_or_an_unrelated_folder(built, tmp_path):
    _, src, _ = built
    assert_user_error(run_cli("report", src["period"], "--out", src["period"]), "would replace the dataset")
    assert_user_error(run_cli("report", src["period"], "--out", src["period"].parent), "would replace the dataset")
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    assert_user_error(run_cli("report", src["period"], "--out", mine), "is not a methbuild report")
    assert (mine / "thesis.tex").read_text() == "precious"
    assert (src["period"] / "MetH-Period.csv").is_file()


def test_index_links_every_report(built, tmp_path):
    import re

    from methbuild.report import write_index

    root, _, reports = built
    index = write_index([(k, r.index) for k, r in reports.items()], root / "index.html", title="all")
    links = re.findall(r'href="([^"]+)"', index.read_text())
    assert len(links) == len(reports)
    assert [(index.parent / h).resolve() for h in links] == [r.index.resolve() for r in reports.values()]
