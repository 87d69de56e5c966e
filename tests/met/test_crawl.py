"""The crawler against the local mirror: every fault kind, resume, SIGKILL, security, bad input."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from methbuild.met import state as st
from methbuild.met.crawl import crawl, load_objects, load_records
from methbuild.met.mirror import serve_in_thread
from tests.conftest import REPO, assert_user_error, run_cli

FAST = dict(concurrency=8, api_rate=500, image_rate=500, retry_base=0.01, retry_max=0.3, retries=40,
            timeout=5, progress=False)
FAULT_PARAMS = "retry_after_s=0.05,burst_s=0.1,slow_s=0.2"


def _temps(out: Path) -> list[str]:
    return [p.name for p in (out / "images").iterdir() if p.name.startswith(".")]


def _check_complete(url, out: Path, report) -> pd.DataFrame:
    """Every object final; downloaded ones are the mirror's exact bytes, on disk, with header sizes."""
    assert report.exit_code == 0, report.summary()
    df = load_objects(out)
    recs = url.mirror.records
    assert sorted(df.object_id) == sorted(recs)
    for row in df.itertuples():
        rec = recs[row.object_id]
        if rec["isPublicDomain"]:
            assert row.status == st.DOWNLOADED, (row.object_id, row.status, row.error)
            truth = url.mirror.truth(row.object_id)
            data = (out / row.image_file).read_bytes()
            assert row.sha256 == truth.sha256 == hashlib.sha256(data).hexdigest()
            assert (row.width, row.height, row.bytes) == (truth.width, truth.height, truth.bytes)
            assert row.image_file == f"images/{row.object_id}.jpg"
        else:
            assert row.status == st.NOT_PUBLIC_DOMAIN and pd.isna(row.image_file)
    assert _temps(out) == []
    files = sorted(p.name for p in (out / "images").iterdir())
    assert len(files) == (df.status == st.DOWNLOADED).sum()
    return df


@pytest.mark.parametrize("faults", ["429=0.3", "403=0.3", "500=0.3", "reset=0.3", "truncate=0.3", "html=0.3",
                                    "slow=0.3", "corrupt=0.3", "all=0.3"])
def test_every_fault_kind_is_survived(tmp_path, faults):
    with serve_in_thread(synthetic=24, seed=7, image_scale=0.04, faults=f"{faults},{FAULT_PARAMS}") as url:
        report = crawl(sorted(url.mirror.records), tmp_path, api_url=url, **FAST)
        _check_complete(url, tmp_path, report)
        injected = url.mirror.faults_injected
        assert sum(injected.values()) > 0, injected
        if faults != "slow=0.3":
            assert report.retries > 0 and sum(report.errors.values()) > 0
    # the exports agree with the state
    pq = pd.read_parquet(tmp_path / "objects.parquet")
    csv = pd.read_csv(tmp_path / "objects.csv")
    assert list(pq.columns) == list(csv.columns) == st.EXPORT_COLUMNS
    assert len(pq) == len(csv) == 24


def test_permanent_outcomes_and_resume_adds_ids(tmp_path):
    with serve_in_thread(synthetic=30, seed=2, image_scale=0.04) as url:
        ids = sorted(url.mirror.records)
        r1 = crawl(ids[:10] + [1, 2], tmp_path, api_url=url, **FAST)
        assert r1.exit_code == 0 and r1.counts[st.NOT_FOUND] == 2
        gets_after_first = dict(url.mirror.image_gets)
        requests_after_first = url.mirror.requests
        r2 = crawl(ids[:10], tmp_path, api_url=url, **FAST)  # nothing left to do
        assert r2.downloaded_now == 0 and url.mirror.requests == requests_after_first
        r3 = crawl(ids, tmp_path, api_url=url, **FAST)  # adds the other 20
        assert r3.downloaded_now == sum(url.mirror.records[i]["isPublicDomain"] for i in ids[10:])
        assert all(url.mirror.image_gets[i] == 1 for i in gets_after_first)  # never downloaded again
        df = load_objects(tmp_path)
        assert len(df) == 32 and (df.status == st.NOT_FOUND).sum() == 2
        recs = load_records(tmp_path)
        assert set(recs) == set(ids) and recs[ids[0]]["objectID"] == ids[0]
        assert all(recs[i]["culture"] == url.mirror.records[i]["culture"] for i in ids)


def test_transient_failures_left_give_exit_1_then_resume(tmp_path):
    with serve_in_thread(synthetic=12, seed=4, image_scale=0.04, faults="500=1.0") as url:
        ids = sorted(url.mirror.records)
        r = crawl(ids, tmp_path, api_url=url, **dict(FAST, retries=1))
        assert r.exit_code == 1 and r.counts[st.FAILED] == 12
        df = load_objects(tmp_path)
        assert df.error.str.contains("HTTP 500").all()
    with serve_in_thread(synthetic=12, seed=4, image_scale=0.04) as url:  # the service recovered
        r = crawl([], tmp_path, api_url=url, **FAST)
        _check_complete(url, tmp_path, r)


def test_redirect_to_foreign_host_is_refused(tmp_path):
    with serve_in_thread(synthetic=10, seed=5, image_scale=0.04, faults="redirect=1.0") as url:
        r = crawl(sorted(url.mirror.records), tmp_path, api_url=url, **FAST)
        assert r.exit_code == 0 and r.counts[st.DOWNLOADED] == 0 and r.counts[st.REFUSED] > 0
        df = load_objects(tmp_path)
        refused = df[df.status == st.REFUSED]
        assert refused.error.str.contains("redirect to foreign host 'localhost'").all()
        assert list((tmp_path / "images").iterdir()) == []


def test_foreign_image_host_needs_allow_host(tmp_path):
    # The API on 127.0.0.1; its records' images on "localhost" (another host name, same server).
    with serve_in_thread(synthetic=6, seed=6, image_scale=0.04, image_host="localhost") as url:
        api = url
        r = crawl(sorted(url.mirror.records), tmp_path / "a", api_url=api, **FAST)
        assert r.counts[st.REFUSED] == sum(x["isPublicDomain"] for x in url.mirror.records.values())
        assert "is not allowed" in load_objects(tmp_path / "a").error.dropna().iloc[0]
        r = crawl(sorted(url.mirror.records), tmp_path / "b", api_url=api, allow_hosts=["localhost"], **FAST)
        assert r.counts[st.REFUSED] == 0 and r.counts[st.DOWNLOADED] > 0


def test_pixel_limit_refuses_bombs(tmp_path):
    with serve_in_thread(synthetic=8, seed=8, image_scale=0.05) as url:
        r = crawl(sorted(url.mirror.records), tmp_path, api_url=url, pixel_limit=500, **FAST)
        assert r.counts[st.DOWNLOADED] == 0 and r.counts[st.REFUSED] > 0
        assert load_objects(tmp_path).error.dropna().str.contains("pixel limit").all()
        assert list((tmp_path / "images").iterdir()) == []


def test_ids_file_errors_name_the_line(tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("# ids\n1\n\n2\n3x\n")
    out = tmp_path / "out"
    assert_user_error(run_cli("crawl", "--ids", ids, "--out", out), "line 5", "3x")
    assert not out.exists()
    assert_user_error(run_cli("crawl", "--out", out), "--ids")
    assert_user_error(run_cli("crawl", "--ids", tmp_path / "none.txt", "--out", out), "does not exist")
    ids.write_text("1\n")
    assert_user_error(run_cli("crawl", "--ids", ids, "--out", out, "--api-url", "ftp://x"), "not an http")


def _count(db: Path, status: str) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM objects WHERE status=?", (status,)).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_sigkill_mid_run_then_resume(tmp_path):
    out = tmp_path / "crawl"
    with serve_in_thread(synthetic=60, seed=9, image_scale=0.05, faults="slow=0.5,slow_s=0.3") as url:
        ids = sorted(url.mirror.records)
        (tmp_path / "ids.txt").write_text("\n".join(map(str, ids)) + "\n")
        args = [sys.executable, "-m", "methbuild", "crawl", "--ids", str(tmp_path / "ids.txt"), "--out", str(out),
                "--api-url", url, "--concurrency", "6", "--api-rate", "80", "--image-rate", "200",
                "--retry-base", "0.01", "--quiet"]
        proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while _count(out / "crawl.sqlite", st.DOWNLOADED) < 8 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done_before = {int(r[0]) for r in sqlite3.connect(out / "crawl.sqlite").execute(
            "SELECT object_id FROM objects WHERE status='downloaded'")}
        assert 8 <= len(done_before) < sum(r["isPublicDomain"] for r in url.mirror.records.values())
        assert not (out / "objects.csv").exists()  # killed before its export
        rerun = run_cli(*args[3:], timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert "downloaded" in rerun.stdout
        for oid in done_before:  # completed before the kill: never downloaded again
            assert url.mirror.image_gets[oid] == 1, oid
        r = crawl([], out, api_url=url, **FAST)
        _check_complete(url, out, r)


def test_file_renamed_but_not_recorded_is_adopted(tmp_path):
    # A kill between the rename and the commit: the row says pending, the complete file exists.
    with serve_in_thread(synthetic=10, seed=10, image_scale=0.04) as url:
        ids = sorted(url.mirror.records)
        crawl(ids, tmp_path, api_url=url, **FAST)
        con = sqlite3.connect(tmp_path / "crawl.sqlite")
        with con:
            con.execute("UPDATE objects SET status='pending', sha256=NULL, image_file=NULL "
                        "WHERE status='downloaded'")
        con.close()
        (tmp_path / "images" / ".123.jpg.tmp-abc").write_bytes(b"half")  # and a stale temp file
        gets = dict(url.mirror.image_gets)
        r = crawl(ids, tmp_path, api_url=url, **FAST)
        assert r.adopted == len(gets) and r.downloaded_now == 0 and url.mirror.image_gets == gets
        _check_complete(url, tmp_path, r)


def test_api_record_redirects_stay_on_allowed_hosts(tmp_path):
    # The API answers 302 for every record: to its own host (followed, the record is fetched there)
    # for even IDs, to another host name for odd ones (refused once, nothing fetched from it).
    import asyncio
    import threading

    from aiohttp import web

    hits: list[str] = []
    ready = threading.Event()
    port: list[int] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.host.split(":")[0] + request.path)
        oid = int(request.match_info["id"])
        if request.path.startswith("/v1/"):
            host = "127.0.0.1" if oid % 2 == 0 else "localhost"
            raise web.HTTPFound(f"http://{host}:{port[0]}/moved/objects/{oid}")
        return web.json_response({"objectID": oid, "isPublicDomain": False, "primaryImage": ""})

    loops: list = []

    def serve() -> None:
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        app = web.Application()
        app.router.add_get("/v1/objects/{id}", record)
        app.router.add_get("/moved/objects/{id}", record)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port.append(runner.addresses[0][1])
        loops.append((loop, stop))
        ready.set()
        loop.run_until_complete(stop.wait())
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        r = crawl([2, 3, 4, 5], tmp_path, api_url=f"http://127.0.0.1:{port[0]}/v1", **FAST)
    finally:
        loop, stop = loops[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
    df = load_objects(tmp_path).set_index("object_id")
    assert df.loc[[2, 4], "status"].eq(st.NOT_PUBLIC_DOMAIN).all(), df
    assert df.loc[[3, 5], "status"].eq(st.REFUSED).all()
    assert df.loc[[3, 5], "error"].str.contains("API redirect to foreign host 'localhost'").all()
    assert not [h for h in hits if h.startswith("localhost")]  # never asked the foreign host
    assert r.exit_code == 0
