"""The crawler's write path: exact bytes with and without O_DIRECT, multi-MiB images end to end,
and a body that stalls mid-way."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import threading

import pytest
from aiohttp import web

from methbuild.met import crawl as crawl_module
from methbuild.met import state as st
from methbuild.met.crawl import CHUNK, _Sink, crawl, load_objects
from methbuild.met.mirror import render_jpeg, serve_in_thread


def _pieces(total: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out, n = [], 0
    while n < total:
        size = min(total - n, rng.choice([1, 7, 4096, 65_536, 262_144, rng.randrange(1, 300_000)]))
        out.append(rng.randbytes(size))
        n += size
    return out


def _direct_io_works(folder) -> bool:
    try:
        os.close(os.open(folder / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("total", [10, 4096, CHUNK, 2 * CHUNK, 3 * CHUNK + 12_345])
def test_sink_writes_the_exact_bytes(tmp_path, direct, total):
    import mmap

    pieces = _pieces(total, seed=total)
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        sink = _Sink(fd, mmap.mmap(-1, CHUNK), direct)
        batch: list[bytes] = []
        for p in pieces[:-1]:  # batches of ~1 MiB, as the event loop hands them over
            batch.append(p)
            if sum(map(len, batch)) >= CHUNK:
                sink.consume(batch)
                batch = []
        assert sink.finish(batch + pieces[-1:]) == total
    finally:
        os.close(fd)
    data = b"".join(pieces)
    assert sink.direct == (direct and _direct_io_works(tmp_path))
    assert path.read_bytes() == data
    assert sink.h.hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("direct", [True, False])
def test_multi_mib_images_end_to_end(tmp_path, direct, monkeypatch):
    # Images of several MiB (several buffers each, an odd tail), written with O_DIRECT or buffered.
    monkeypatch.setattr(crawl_module, "DEFAULT_DIRECT_IO", direct)
    with serve_in_thread(synthetic=8, seed=5, image_scale=0.7, noise=120, quality=92) as url:
        ids = sorted(url.mirror.records)
        r = crawl(ids, tmp_path, api_url=url, concurrency=4, api_rate=500, image_rate=500, progress=False)
        assert r.exit_code == 0, r.summary()
        df = load_objects(tmp_path)
        done = df[df.status == st.DOWNLOADED]
        assert len(done) >= 2 and done.bytes.max() > 2 * CHUNK
        for row in done.itertuples():
            truth = url.mirror.truth(row.object_id)
            data = (tmp_path / row.image_file).read_bytes()
            assert row.sha256 == truth.sha256 == hashlib.sha256(data).hexdigest() and len(data) == truth.bytes
        assert [p for p in (tmp_path / "images").iterdir() if p.name.startswith(".")] == []


def test_a_stalled_body_is_retried(tmp_path):
    # The first GET of the image sends half the body and then nothing: the stall watchdog closes it
    # after the timeout, the attempt is a transient error, and the retry gets the whole image.
    body = render_jpeg(1, 1, 1300, 1100, noise=120, quality=92)
    assert len(body) > CHUNK
    gets = {"n": 0}
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: dict = {}

    async def record(request):
        oid = int(request.match_info["oid"])
        return web.json_response({"objectID": oid, "isPublicDomain": True,
                                  "primaryImage": f"http://127.0.0.1:{port['p']}/img/{oid}.jpg"})

    async def image(request):
        gets["n"] += 1
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        resp.content_length = len(body)
        await resp.prepare(request)
        if gets["n"] == 1:
            await resp.write(body[: len(body) // 2])
            await port["release"].wait()  # stalled until the test ends: the client gives up first
        await resp.write(body)
        return resp

    async def start():
        port["release"] = asyncio.Event()
        app = web.Application()
        app.add_routes([web.get("/api/objects/{oid}", record), web.get("/img/{name}", image)])
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port["p"] = site._server.sockets[0].getsockname()[1]
        return runner

    def run():
        asyncio.set_event_loop(loop)
        port["runner"] = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait()
    try:
        r = crawl([7], tmp_path, api_url=f"http://127.0.0.1:{port['p']}/api", concurrency=1, api_rate=500,
                  image_rate=500, progress=False, retries=1, retry_base=0.01, timeout=0.5)
    finally:
        loop.call_soon_threadsafe(port["release"].set)
        asyncio.run_coroutine_threadsafe(port["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
    assert gets["n"] == 2 and r.exit_code == 0, r.summary()
    assert r.errors == {"img_slow": 1} and r.retries == 1
    df = load_objects(tmp_path)
    assert df.status.tolist() == [st.DOWNLOADED] and df.sha256[0] == hashlib.sha256(body).hexdigest()
