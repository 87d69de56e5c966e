"""Hostile and unlucky input for `crawl`, `met csv` and `mirror` (issue 13), through the commands.

Families: non-finite floats and absurd values, huge integers, record bombs (malformed, oversized,
deeply nested), slow bodies (trickling records and images), compressed images, tampered resume
state, full disks (a real tmpfs), and two runs on one folder. The network cases talk to a hostile
aiohttp server on 127.0.0.1 that each test starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from aiohttp import web

from methbuild.io.lock import LOCK_NAME, folder_lock
from methbuild.met import state as st
from methbuild.met.crawl import crawl, load_objects
from methbuild.met.metadata import MET_COLUMNS
from methbuild.met.mirror import render_jpeg, serve_in_thread
from methbuild.met.ratelimit import AdaptiveRateLimiter, HostLimiters
from tests.conftest import REPO, assert_user_error, resize_disk, run_cli

# Where a refused command would otherwise go if it did not refuse: a closed port, never the internet.
NOWHERE = ("--api-url", "http://127.0.0.1:9/x", "--retries", "0")
FAST_CLI = ("--quiet", "--api-rate", "80", "--image-rate", "1000", "--retry-base", "0.01", "--concurrency", "4")
IMAGE = render_jpeg(3, 3, 96, 64, noise=40)


# ---------------------------------------------------------------- a hostile server

class Hostile:
    """A Collection API and image host on 127.0.0.1 whose answers each test writes.

    ``record(oid)`` and ``image(oid)`` are coroutines ``(request, server) -> StreamResponse``;
    the defaults answer like the Met. ``hits`` counts requests per path.
    """

    def __init__(self) -> None:
        self.records: dict[int, Callable] = {}
        self.images: dict[int, Callable] = {}
        self.hits: dict[str, int] = {}
        self.headers: dict[str, list[dict]] = {}
        self.root = ""
        self.release: asyncio.Event | None = None  # handlers may wait on it; release_all() sets it
        self.loop: asyncio.AbstractEventLoop | None = None

    def release_all(self) -> None:
        assert self.loop is not None and self.release is not None
        self.loop.call_soon_threadsafe(self.release.set)

    @property
    def api(self) -> str:
        return self.root + "/api"

    def image_url(self, oid: int) -> str:
        return f"{self.root}/img/{oid}.jpg"

    async def _record(self, request: web.Request) -> web.StreamResponse:
        oid = int(request.match_info["oid"])
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        handler = self.records.get(oid)
        if handler is not None:
            return await handler(request, self)
        return web.json_response({"objectID": oid, "isPublicDomain": True, "primaryImage": self.image_url(oid)})

    async def _image(self, request: web.Request) -> web.StreamResponse:
        oid = int(request.match_info["name"].split(".")[0])
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        self.headers.setdefault(request.path, []).append(dict(request.headers))
        handler = self.images.get(oid)
        if handler is not None:
            return await handler(request, self)
        return web.Response(body=IMAGE, content_type="image/jpeg")


@contextlib.contextmanager
def hostile_server() -> Iterator[Hostile]:
    server = Hostile()
    loop = server.loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict = {}

    async def start() -> web.AppRunner:
        server.release = asyncio.Event()
        app = web.Application()
        app.add_routes([web.get("/api/objects/{oid}", server._record), web.get("/img/{name}", server._image)])
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.root = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return runner

    def run() -> None:
        asyncio.set_event_loop(loop)
        box["runner"] = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield server
    finally:
        server.release_all()
        asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _ids_file(tmp_path: Path, ids) -> Path:
    p = tmp_path / "ids.txt"
    p.write_text("".join(f"{i}\n" for i in ids))
    return p


def _crawl_cli(tmp_path: Path, server_api: str, ids, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_cli("crawl", "--ids", _ids_file(tmp_path, ids), "--out", out, "--api-url", server_api, *FAST_CLI,
                   *extra, timeout=120)


def _json(payload: bytes | str, **headers) -> Callable:
    async def handler(request, server):
        return web.Response(body=payload if isinstance(payload, bytes) else payload.encode(),
                            headers={"Content-Type": "application/json", **headers})
    return handler


def _statuses(out: Path) -> dict[int, str]:
    return dict(zip(load_objects(out).object_id, load_objects(out).status, strict=True))


# ---------------------------------------------------------------- record bombs

def test_malformed_oversized_and_nested_records_are_bad_records(tmp_path):
    out = tmp_path / "out"
    with hostile_server() as srv:
        img = srv.image_url
        srv.records = {
            1: _json(json.dumps({"objectID": 1, "isPublicDomain": True, "primaryImage": 12345})),
            2: _json(json.dumps({"objectID": 2, "isPublicDomain": True, "primaryImage": [img(2)]})),
            3: _json(json.dumps({"objectID": 3, "isPublicDomain": "false", "primaryImage": img(3)})),
            4: _json("[" * 200_000 + "]" * 200_000),  # RecursionError in the JSON parser
            # 8 MiB of JSON in ~8 KB of gzip: a bomb, refused while streaming
            5: _json(gzip.compress(b'{"objectID": 5, "pad": "' + b" " * (8 << 20) + b'"}'), **{"Content-Encoding": "gzip"}),
            6: _json(json.dumps({"objectID": 6, "isPublicDomain": 1, "primaryImage": img(6)})),
        }
        proc = _crawl_cli(tmp_path, srv.api, range(1, 8), out)
        assert proc.returncode == 0, proc.stderr
        assert "bad record 6" in proc.stdout and "Traceback" not in proc.stderr
        df = load_objects(out).set_index("object_id")
        assert df.loc[7, "status"] == st.DOWNLOADED
        assert (df.loc[1:6, "status"] == st.BAD_RECORD).all()
        assert "primaryImage is a number" in df.loc[1, "error"] and "primaryImage is a list" in df.loc[2, "error"]
        assert "isPublicDomain is a string 'false'" in df.loc[3, "error"]
        assert "nested too deeply" in df.loc[4, "error"] and "larger than" in df.loc[5, "error"]
        assert not any(srv.hits.get(f"/img/{i}.jpg") for i in range(1, 7))  # no image asked for a bad record
        # recorded once: a rerun asks nothing again
        before = dict(srv.hits)
        proc = _crawl_cli(tmp_path, srv.api, range(1, 8), out)
        assert proc.returncode == 0 and srv.hits == before, proc.stderr


def test_a_stored_malformed_or_tampered_record_is_fetched_again(tmp_path):
    # A folder written before records were checked holds a record whose primaryImage is a list (it used
    # to crash every later run), another whose record is not JSON, and a third whose record belongs to
    # another object; a downloaded row points at a file of the wrong length, another at a missing file.
    out = tmp_path / "out"
    with hostile_server() as srv:
        assert _crawl_cli(tmp_path, srv.api, range(1, 6), out).returncode == 0
        (out / "images" / "4.jpg").write_bytes(IMAGE[:100])  # truncated behind the state's back
        (out / "images" / "5.jpg").unlink()
        con = sqlite3.connect(out / "crawl.sqlite")
        with con:
            con.execute("UPDATE objects SET status='pending', record=? WHERE object_id=1",
                        (json.dumps({"objectID": 1, "isPublicDomain": True, "primaryImage": ["x"]}),))
            con.execute("UPDATE objects SET status='pending', record='{not json' WHERE object_id=2")
            con.execute("UPDATE objects SET status='pending', record=? WHERE object_id=3",
                        (json.dumps({"objectID": 99, "isPublicDomain": True, "primaryImage": "x"}),))
            con.execute("UPDATE objects SET status='banana' WHERE object_id=5")
        con.close()
        hits = dict(srv.hits)
        proc = _crawl_cli(tmp_path, srv.api, range(1, 6), out)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        for oid in (1, 2, 3):  # each record fetched again (the stored one dropped), nothing guessed
            assert srv.hits[f"/api/objects/{oid}"] == hits[f"/api/objects/{oid}"] + 1
        for oid in (4, 5):  # redone: downloaded again, the exact bytes
            assert srv.hits[f"/img/{oid}.jpg"] == hits[f"/img/{oid}.jpg"] + 1
        df = load_objects(out)
        assert (df.status == st.DOWNLOADED).all() and (df.sha256 == hashlib.sha256(IMAGE).hexdigest()).all()
        for oid in range(1, 6):
            assert (out / "images" / f"{oid}.jpg").read_bytes() == IMAGE


# ---------------------------------------------------------------- slow bodies

def _trickle(body: bytes, step: float = 0.05, *, times: int = 1, ctype: str = "image/jpeg") -> Callable:
    """Trickle ``body`` one byte per ``step`` for the first ``times`` requests; then answer at once."""
    count = {"n": 0}

    async def handler(request, server):
        count["n"] += 1
        resp = web.StreamResponse(headers={"Content-Type": ctype})
        resp.content_length = len(body)
        await resp.prepare(request)
        if count["n"] <= times:
            for i in range(len(body)):
                await resp.write(body[i:i + 1])
                await asyncio.sleep(step)
        else:
            await resp.write(body)
        return resp
    return handler


def test_trickling_images_and_records_are_cut_off_and_retried(tmp_path):
    # An image trickled at 20 bytes/s never stalls (the idle watchdog alone let it run for days): it is
    # closed for being below --min-speed within two --timeout windows and retried. A record trickled
    # the same way passes its total deadline (--timeout). Both succeed on the retry.
    out = tmp_path / "out"
    with hostile_server() as srv:
        srv.images[1] = _trickle(IMAGE)
        rec = json.dumps({"objectID": 2, "isPublicDomain": True, "primaryImage": srv.image_url(2)}).encode()
        srv.records[2] = _trickle(rec, ctype="application/json")
        t0 = time.monotonic()
        proc = _crawl_cli(tmp_path, srv.api, [1, 2], out, "--timeout", "0.5", "--retries", "2")
        took = time.monotonic() - t0
        assert proc.returncode == 0, proc.stderr
        assert srv.hits["/img/1.jpg"] == 2 and srv.hits["/api/objects/2"] == 2
        assert "img_slow 1" in proc.stdout and "api_network 1" in proc.stdout
        assert _statuses(out) == {1: st.DOWNLOADED, 2: st.DOWNLOADED}
        assert took < 30  # the trickles alone would take len(IMAGE) / 20 s
        assert len(IMAGE) * 0.05 > 60


# ---------------------------------------------------------------- compressed images

def test_images_are_asked_uncompressed_and_a_gzip_image_is_decoded_and_capped(tmp_path):
    honest = gzip.compress(IMAGE)
    bomb = gzip.compress(b"\xff\xd8\xff" + bytes(8 << 20))

    def gz(body):
        async def handler(request, server):
            return web.Response(body=body, headers={"Content-Type": "image/jpeg", "Content-Encoding": "gzip"})
        return handler

    with hostile_server() as srv:
        srv.images[1], srv.images[2] = gz(honest), gz(bomb)
        r = crawl([1, 2, 3], tmp_path, api_url=srv.api, retries=3, retry_base=0.01, max_bytes=1 << 20,
                  api_rate=500, image_rate=500, progress=False)
        assert all(h[0]["Accept-Encoding"] == "identity" for h in srv.headers.values())
        df = load_objects(tmp_path).set_index("object_id")
        # the honest gzip image: decoded, downloaded at the first attempt (its Content-Length counts gzip bytes)
        assert df.loc[1, "status"] == st.DOWNLOADED and srv.hits["/img/1.jpg"] == 1
        assert df.loc[1, "sha256"] == hashlib.sha256(IMAGE).hexdigest()
        # the bomb: cut at the byte limit while streaming, refused once
        assert df.loc[2, "status"] == st.REFUSED and "byte limit" in df.loc[2, "error"]
        assert srv.hits["/img/2.jpg"] == 1 and r.exit_code == 0
        assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["1.jpg", "3.jpg"]


# ---------------------------------------------------------------- resume

def test_resume_adopts_a_file_only_at_its_announced_length(tmp_path):
    # A run killed between the rename and the commit leaves a complete file: adopted. A truncated file
    # under the final name (copied in, or damaged) is not adopted: it is fetched again.
    with hostile_server() as srv:
        crawl([1, 2], tmp_path, api_url=srv.api, retry_base=0.01, api_rate=500, image_rate=500, progress=False)
        (tmp_path / "images" / "2.jpg").write_bytes(IMAGE[: len(IMAGE) // 2])  # still a decodable header
        con = sqlite3.connect(tmp_path / "crawl.sqlite")
        with con:
            con.execute("UPDATE objects SET status='pending', image_file=NULL, sha256=NULL, bytes=NULL")
        con.close()
        r = crawl([1, 2], tmp_path, api_url=srv.api, retry_base=0.01, api_rate=500, image_rate=500, progress=False)
        assert r.adopted == 1 and r.downloaded_now == 1
        assert srv.hits["/img/1.jpg"] == 1 and srv.hits["/img/2.jpg"] == 2
        assert (tmp_path / "images" / "2.jpg").read_bytes() == IMAGE


def test_a_refusal_is_reevaluated_against_the_current_allow_list(tmp_path):
    # The API on 127.0.0.1, its images on "localhost": refused until --allow-host localhost is given.
    out = tmp_path / "out"
    with serve_in_thread(synthetic=6, seed=6, image_scale=0.03, image_host="localhost") as url:
        ids = sorted(url.mirror.records)
        public = sum(r["isPublicDomain"] for r in url.mirror.records.values())
        proc = _crawl_cli(tmp_path, url, ids, out)
        assert proc.returncode == 0 and f"refused {public}" in proc.stdout
        proc = _crawl_cli(tmp_path, url, ids, out)  # still not allowed: still refused, nothing fetched
        assert f"refused {public}" in proc.stdout and not url.mirror.image_gets
        proc = _crawl_cli(tmp_path, url, ids, out, "--allow-host", "localhost")
        assert proc.returncode == 0 and f"downloaded {public}" in proc.stdout and "refused 0" in proc.stdout


# ---------------------------------------------------------------- non-finite floats, huge integers, absurd values

@pytest.mark.parametrize("args, needle", [
    (("--api-rate", "nan"), "--api-rate"), (("--image-rate", "inf"), "--image-rate"),
    (("--timeout", "nan"), "--timeout"), (("--retry-base", "nan"), "--retry-base"),
    (("--min-speed", "-inf"), "--min-speed"), (("--api-url", "http://127.0.0.1:99999/x"), "port"),
    (("--retries", "99999999999999999999999"), "--retries"),
])
def test_crawl_refuses_absurd_values(tmp_path, args, needle):
    out = tmp_path / "out"
    base = NOWHERE if "--api-url" not in args else ("--retries", "0")
    if "--retries" in args:
        base = NOWHERE[:2]
    assert_user_error(run_cli("crawl", "--ids", _ids_file(tmp_path, [1]), "--out", out, *base, *args), needle)
    assert not out.exists()


def test_the_rate_limiter_refuses_non_finite_rates():
    for bad in (float("nan"), float("inf"), -float("inf"), 0.0, -1.0):
        with pytest.raises(ValueError, match="finite"):
            AdaptiveRateLimiter(bad)
        with pytest.raises(ValueError, match="finite"):
            HostLimiters(bad)
    with pytest.raises(Exception, match="finite"):
        crawl([1], "unused", api_rate=float("nan"), progress=False)


@pytest.mark.parametrize("content, needle", [
    ("1\n99999999999999999999999\n", "line 2"), ("5\n²\n", "line 2"), ("", "no object IDs"),
    ("# only comments\n\n", "no object IDs"), ("9223372036854775808\n", "out of range"),
])
def test_crawl_ids_file_huge_unicode_or_empty(tmp_path, content, needle):
    (tmp_path / "ids.txt").write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    assert_user_error(run_cli("crawl", "--ids", tmp_path / "ids.txt", "--out", out, *NOWHERE), needle)
    assert not out.exists()


@pytest.mark.parametrize("value, column, needle", [
    ("1e20", "Object ID", "2**63-1"), ("99999999999999999999", "Object ID", "2**63-1"),
    ("-3", "Object ID", "2**63-1"), ("false", "Is Public Domain", "True or False"),
])
def test_metobjects_ids_and_booleans_are_parsed_strictly(tmp_path, value, column, needle):
    row = {c: "" for c in MET_COLUMNS} | {"Object ID": "5", "Is Public Domain": "True", "Is Highlight": "False",
                                           "Is Timeline Work": "False"}
    pd.DataFrame([row, row | {column: value}]).to_csv(tmp_path / "m.csv", index=False)
    assert_user_error(run_cli("crawl", "--metadata", tmp_path / "m.csv", "--out", tmp_path / "o", *NOWHERE), needle)


@pytest.mark.parametrize("args, needle", [
    (("--synthetic", "3", "--image-scale", "nan"), "--image-scale"), (("--synthetic", "3", "--seed", "-1"), "--seed"),
    (("--synthetic", "3", "--seed", str(2**64)), "--seed"), (("--synthetic", str(10**20)), "--synthetic"),
])
def test_mirror_refuses_absurd_values(args, needle):
    assert_user_error(run_cli("mirror", "--port", "0", *args, timeout=30), needle)


# ---------------------------------------------------------------- met csv

def _csv_bytes(rows: int, pad: int = 0) -> bytes:
    head = ",".join(MET_COLUMNS) + "\n"
    cols = {c: i for i, c in enumerate(MET_COLUMNS)}
    lines = []
    for i in range(rows):
        v = [""] * len(MET_COLUMNS)
        v[cols["Object ID"]], v[cols["Is Public Domain"]] = str(1000 + i), "True"
        v[cols["Is Highlight"]] = v[cols["Is Timeline Work"]] = "False"
        v[cols["Title"]] = "x" * pad
        lines.append(",".join(v) + "\n")
    return (head + "".join(lines)).encode()


def _serve_csv(body: bytes, **headers) -> Callable:
    async def handler(request, server):
        return web.Response(body=body, headers={"Content-Type": "text/csv", **headers})
    return handler


def test_met_csv_rejected_never_lands_under_out(tmp_path):
    # The CSV is parsed before the rename: one with an Object ID of 1e20 (which used to wrap around to
    # -9223372036854775808) is refused and never appears under --out, where `build` would trip on it.
    good = _csv_bytes(30)
    bad_id = good.replace(b",True,1003,", b",True,1e20,", 1)
    assert bad_id != good
    out = tmp_path / "d" / "MetObjects.csv"
    with hostile_server() as srv:  # its image route serves the CSV bodies
        srv.images = {1: _serve_csv(bad_id), 2: _serve_csv(good)}
        assert_user_error(run_cli("met", "csv", "--url", f"{srv.root}/img/1.jpg", "--out", out, "--quiet"),
                          "2**63-1", "data row 4")
        assert not out.exists() and [p.name for p in out.parent.iterdir()] == [LOCK_NAME]
        proc = run_cli("met", "csv", "--url", f"{srv.root}/img/2.jpg", "--out", out, "--quiet")
        assert proc.returncode == 0 and "30 objects" in proc.stdout, proc.stderr
        assert out.read_bytes() == good


def test_met_csv_gzip_body_is_checked_on_the_wire_and_capped(tmp_path, monkeypatch):
    good = _csv_bytes(50)
    out = tmp_path / "MetObjects.csv"
    with hostile_server() as srv:
        srv.images = {1: _serve_csv(gzip.compress(good), **{"Content-Encoding": "gzip"})}
        proc = run_cli("met", "csv", "--url", f"{srv.root}/img/1.jpg", "--out", out, "--quiet")
        assert proc.returncode == 0 and "50 objects" in proc.stdout, proc.stderr  # Content-Length counts gzip bytes
        assert out.read_bytes() == good
        # a decoded body beyond the cap is refused while streaming (the cap made small for the test)
        from methbuild.met import download

        monkeypatch.setattr(download, "MAX_CSV_BYTES", 4096)
        bomb_out = tmp_path / "bomb.csv"
        with pytest.raises(Exception, match="compression bomb"):
            download.download_met_csv(f"{srv.root}/img/1.jpg", bomb_out, progress=False)
        assert not bomb_out.exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != LOCK_NAME] == []


# ---------------------------------------------------------------- two runs on one folder

def test_a_second_crawl_or_met_csv_on_a_busy_folder_exits_2_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    with hostile_server() as srv:
        async def held(request, server):  # the first run's image waits until the test lets it go
            await server.release.wait()
            return web.Response(body=IMAGE, content_type="image/jpeg")

        srv.images[1] = held
        first = subprocess.Popen([sys.executable, "-m", "methbuild", "crawl", "--ids", str(_ids_file(tmp_path, [1])),
                                  "--out", str(out), "--api-url", srv.api, *FAST_CLI], cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 60
            while not srv.hits.get("/img/1.jpg") and time.time() < deadline:
                time.sleep(0.05)
            second = _crawl_cli(tmp_path, srv.api, [2], out)
            assert_user_error(second, "in use by", f"pid {first.pid}")
        finally:
            srv.release_all()
            stdout, stderr = first.communicate(timeout=60)
        assert first.returncode == 0, stderr
        assert _statuses(out) == {1: st.DOWNLOADED}  # the second run added nothing
        # met csv into a folder another run holds
        with folder_lock(tmp_path / "csvdir"):
            assert_user_error(run_cli("met", "csv", "--url", f"{srv.root}/img/9.jpg", "--out",
                                      tmp_path / "csvdir" / "MetObjects.csv"), "in use by", f"pid {os.getpid()}")


# ---------------------------------------------------------------- full disks

def _fill(disk: Path) -> None:
    """Take every byte left on ``disk`` (a file ``filler``)."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, bytes(size))
    finally:
        os.close(fd)


def _one_line_disk_full(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no space left on device" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_crawl_on_a_full_disk_stops_cleanly_and_a_rerun_completes(tmp_path, small_disk):
    disk = small_disk
    out = disk / "crawl"
    with serve_in_thread(synthetic=16, seed=3, image_scale=0.2, noise=60) as url:
        ids = sorted(url.mirror.records)
        total = sum(url.mirror.truth(i).bytes for i in ids if url.mirror.records[i]["isPublicDomain"])
        assert total > 2 << 20  # twice the disk
        proc = _crawl_cli(tmp_path, url, ids, out)
        _one_line_disk_full(proc)
        # the state is consistent: every downloaded row has its complete file; no temp file is left
        con = sqlite3.connect(out / "crawl.sqlite")
        rows = con.execute("SELECT object_id, image_file, bytes FROM objects WHERE status='downloaded'").fetchall()
        con.close()
        for oid, image_file, nbytes in rows:
            assert (out / image_file).stat().st_size == nbytes == url.mirror.truth(oid).bytes
        assert not [p for p in (out / "images").iterdir() if p.name.startswith(".")]
        # Now not a byte left: the first write to fail is SQLite's ("database or disk is full", not an
        # OSError), when the rerun registers its IDs: the same one line, exit 1.
        _fill(disk)
        _one_line_disk_full(_crawl_cli(tmp_path, url, ids + [10**9], out))
        (disk / "filler").unlink()
        resize_disk(small_disk, "64m")  # space freed
        proc = _crawl_cli(tmp_path, url, ids, out)
        assert proc.returncode == 0, proc.stderr
        df = load_objects(out)
        for row in df[df.status == st.DOWNLOADED].itertuples():
            assert row.sha256 == url.mirror.truth(row.object_id).sha256
        assert (df.status == st.DOWNLOADED).sum() == sum(r["isPublicDomain"] for r in url.mirror.records.values())


def test_met_csv_on_a_full_disk_leaves_nothing_and_a_rerun_completes(tmp_path, small_disk):
    disk = small_disk
    body = _csv_bytes(4000, pad=400)
    assert len(body) > 1 << 20
    out = disk / "MetObjects.csv"
    with hostile_server() as srv:
        srv.images = {1: _serve_csv(body)}
        proc = run_cli("met", "csv", "--url", f"{srv.root}/img/1.jpg", "--out", out, "--quiet")
        _one_line_disk_full(proc)
        assert [p.name for p in disk.iterdir() if p.name != LOCK_NAME] == []
        resize_disk(small_disk, "16m")
        proc = run_cli("met", "csv", "--url", f"{srv.root}/img/1.jpg", "--out", out, "--quiet")
        assert proc.returncode == 0 and "4000 objects" in proc.stdout, proc.stderr
        assert out.read_bytes() == body
