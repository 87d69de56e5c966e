"""The local mirror: Met-like records, the real size spread, real JPEGs, its CSV and the `met csv` command."""

from __future__ import annotations

import functools
import http.server
import threading
from collections import Counter
from contextlib import contextmanager

import numpy as np
import pytest
import requests

from methbuild.errors import UserError
from methbuild.io.lock import LOCK_NAME
from methbuild.met import vocab
from methbuild.met.download import download_met_csv
from methbuild.met.metadata import MET_COLUMNS, read_met_csv
from methbuild.met.mirror import FaultPlan, draw_size, serve_in_thread, synthetic_rows
from tests.conftest import MET_DATA, assert_user_error, run_cli


def test_sizes_follow_the_met_spread():
    sizes = np.array([draw_size(0, i) for i in range(4000)], dtype=float)
    mp = sizes[:, 0] * sizes[:, 1] / 1e6
    ar = sizes[:, 0] / sizes[:, 1]
    assert 5.6 < np.median(mp) < 6.6 and 2.2 < np.percentile(mp, 25) < 2.8 and 10.0 < np.percentile(mp, 75) < 11.4
    assert 0.09 < (mp > 12).mean() < 0.13 and mp.max() <= 66.7 and mp.min() >= 0.24
    assert 0.48 < (ar < 1).mean() < 0.55 and 0.9 < np.median(ar) < 1.05
    assert draw_size(0, 5) == draw_size(0, 5) != draw_size(1, 5)


def test_synthetic_records_are_met_like():
    rows = synthetic_rows(3000, seed=3)
    assert rows == synthetic_rows(3000, seed=3) and set(rows[0]) == set(MET_COLUMNS)
    pd_share = np.mean([r["Is Public Domain"] == "True" for r in rows])
    exact = np.mean([r["Object Begin Date"] == r["Object End Date"] and 1500 <= int(r["Object Begin Date"]) <= 1900
                     for r in rows])
    assert 0.82 < pd_share < 0.88 and 0.36 < exact < 0.44
    media = Counter(r["Medium"] for r in rows)
    cultures = Counter(r["Culture"] for r in rows)
    for m in ("Gold", "Woodcut", "Hard-paste porcelain", "Soft-paste porcelain", "Silk", "Limestone"):
        assert media[m] > 5, m
    assert media["silk"] + media["Silk "] > 0 and cultures["Greek, Attic"] > 0 and cultures["China"] > 0
    assert {c for c, _ in vocab.CULTURES} >= {"Roman", "Coptic", "Etruscan", "Cypriot", "Dutch", "Indian"}


def test_api_shape_images_and_csv(tmp_path):
    with serve_in_thread(synthetic=40, seed=1, image_scale=0.05) as url:
        listing = requests.get(url + "/objects", timeout=10).json()
        assert listing["total"] == 40 and len(listing["objectIDs"]) == 40
        assert requests.get(url + "/departments", timeout=10).json()["departments"]
        assert requests.get(url + "/objects/3", timeout=10).status_code == 404
        recs = [requests.get(f"{url}/objects/{i}", timeout=10).json() for i in listing["objectIDs"]]
        pub = [r for r in recs if r["isPublicDomain"]]
        assert all(r["primaryImage"] == "" for r in recs if not r["isPublicDomain"])
        assert pub and all(r["primaryImage"].startswith(url.root + "/CRDImages/") for r in pub)
        assert {"culture", "medium", "objectBeginDate", "accessionNumber", "classification"} <= set(pub[0])
        r = requests.get(pub[0]["primaryImage"], timeout=10)
        truth = url.mirror.truth(pub[0]["objectID"])
        import hashlib
        import io

        from PIL import Image

        assert hashlib.sha256(r.content).hexdigest() == truth.sha256
        assert requests.get(pub[0]["primaryImage"], timeout=10).content == r.content  # cached, identical
        with Image.open(io.BytesIO(r.content)) as im:
            assert im.format == "JPEG" and im.size == (truth.width, truth.height)
            im.load()
        small = requests.get(pub[0]["primaryImageSmall"], timeout=10).content
        assert small != r.content
        # the CSV it serves records from, downloadable with `met csv`
        out = tmp_path / "m.csv"
        download_met_csv(url.root + "/MetObjects.csv", out, progress=False)
        df = read_met_csv(out)
        assert sorted(df["Object ID"]) == listing["objectIDs"] and len(df.columns) == 54
        row = df[df["Object ID"] == pub[0]["objectID"]].iloc[0]
        assert row["Culture"] == pub[0]["culture"] and row["Medium"] == pub[0]["medium"]
        proc = run_cli("met", "csv", "--url", url.root + "/MetObjects.csv", "--out", tmp_path / "cli.csv", "--quiet")
        assert proc.returncode == 0, proc.stderr
        assert "40 objects" in proc.stdout and (tmp_path / "cli.csv").read_bytes() == out.read_bytes()


def test_real_rows_are_served():
    with serve_in_thread(metadata=MET_DATA / "MetObjects_sample2000.csv", image_scale=0.02) as url:
        rec = requests.get(url + "/objects/503046", timeout=10).json()
        assert rec["culture"] == "British" and rec["objectBeginDate"] == 1820 and rec["isPublicDomain"] is True


@contextmanager
def _static_server(folder):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()


def test_met_csv_refuses_lfs_pointer_and_404(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "MetObjects.csv").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 3\n")
    out = tmp_path / "out" / "MetObjects.csv"
    with _static_server(src) as root:
        assert_user_error(run_cli("met", "csv", "--url", root + "/MetObjects.csv", "--out", out), "LFS pointer")
        assert_user_error(run_cli("met", "csv", "--url", root + "/nothing.csv", "--out", out), "HTTP 404")
    # no half-written file (the lock file of `met csv`'s one-run-per-folder lock may stay: it holds no data)
    assert not out.exists() and not [p for p in out.parent.iterdir() if p.name != LOCK_NAME]


def test_fault_specs():
    plan = FaultPlan.parse("all=0.3,slow_s=0.2")
    assert abs(sum(plan.rates.values()) - 0.3) < 1e-9 and plan.slow_s == 0.2
    assert FaultPlan.parse("429=0.1").rates == {"429": 0.1}
    for bad in ("boom=0.1", "429", "429=x", "429=0.8,500=0.5"):
        with pytest.raises(UserError):
            FaultPlan.parse(bad)
    assert_user_error(run_cli("mirror", "--synthetic", "5", "--faults", "boom=1"), "unknown fault kind")
    assert_user_error(run_cli("mirror"), "--synthetic")
