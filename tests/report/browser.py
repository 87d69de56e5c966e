"""Open a page in headless Chromium over the DevTools protocol and report what a person would see.

:func:`inspect_page` starts ``/usr/bin/chromium`` (the Debian package; CI installs it) with a
private profile and ``--remote-debugging-port=0``, navigates to a ``file://`` URL, and returns the
console errors, failed loads and exceptions, every ``<img>`` with its ``naturalWidth``, the section
ids, and writes a full-page screenshot. No browser is downloaded at run time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import threading
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")

PROBE = """JSON.stringify({
  images: Array.from(document.images).map(i => ({src: i.getAttribute('src'), alt: i.getAttribute('alt'),
                                                   complete: i.complete, naturalWidth: i.naturalWidth})),
  sections: Array.from(document.querySelectorAll('section[id]')).map(s => s.id),
  toc: Array.from(document.querySelectorAll('nav a')).map(a => a.getAttribute('href')),
  tables: document.querySelectorAll('table').length,
  scripts: document.scripts.length,
  title: document.title,
  text: document.body.innerText.slice(0, 200000)
})"""


def _devtools_url(proc: subprocess.Popen, timeout: float) -> str:
    found: list[str] = []
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        # keeps draining stderr until chromium exits: a full pipe would block the browser
        for line in proc.stderr:  # type: ignore[union-attr]
            if len(lines) < 200:
                lines.append(line)
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m and not found:
                found.append(m.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    ready.wait(timeout)
    if not found:
        raise RuntimeError("chromium did not start its DevTools endpoint: " + "".join(lines[-10:]))
    return found[0]


async def _session(ws_browser: str, url: str, screenshot: Path, timeout: float) -> dict:
    import aiohttp

    port = re.search(r":(\d+)/", ws_browser).group(1)
    async with aiohttp.ClientSession() as http:
        async with http.put(f"http://127.0.0.1:{port}/json/new?about:blank") as r:
            target = json.loads(await r.text())
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = iter(range(1, 10**9))
            events: list[dict] = []
            pending: dict[int, asyncio.Future] = {}

            async def reader():
                async for msg in ws:
                    data = json.loads(msg.data)
                    if "id" in data and data["id"] in pending:
                        pending.pop(data["id"]).set_result(data)
                    else:
                        events.append(data)

            task = asyncio.create_task(reader())

            async def call(method: str, **params):
                i = next(ids)
                fut = asyncio.get_running_loop().create_future()
                pending[i] = fut
                await ws.send_str(json.dumps({"id": i, "method": method, "params": params}))
                res = await asyncio.wait_for(fut, timeout)
                if "error" in res:
                    raise RuntimeError(f"{method}: {res['error']}")
                return res.get("result", {})

            for domain in ("Page", "Runtime", "Log", "Network"):
                await call(f"{domain}.enable")
            await call("Page.navigate", url=url)
            deadline = time.monotonic() + timeout
            while not any(e.get("method") == "Page.loadEventFired" for e in events):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not finish loading within {timeout} s")
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # late console messages
            res = await call("Runtime.evaluate", expression=PROBE, returnByValue=True)
            probe = json.loads(res["result"]["value"])
            metrics = await call("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            width, height = int(size["width"]), int(min(size["height"], 16000))
            await call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                       mobile=False)
            shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            task.cancel()
    errors = []
    for ev in events:
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
        elif m == "Runtime.exceptionThrown":
            errors.append("exception: " + p["exceptionDetails"].get("text", ""))
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        elif m == "Network.loadingFailed":
            errors.append(f"load failed: {p.get('errorText')}")
    requests = [ev["params"]["request"]["url"] for ev in events if ev.get("method") == "Network.requestWillBeSent"]
    return {"errors": errors, "requests": requests, "screenshot": str(screenshot), **probe}


def inspect_page(index: Path, tmp: Path, timeout: float = 60.0) -> dict:
    if not CHROMIUM.exists():
        raise AssertionError(f"{CHROMIUM} is missing: install the Debian package 'chromium' (.ci/run does it in CI); "
                             "the report's browser test needs it")
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    proc = subprocess.Popen([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-background-networking", "--disable-component-update", "--disable-sync",
                             "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             "--window-size=1280,900", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ws = _devtools_url(proc, timeout)
        return asyncio.run(_session(ws, index.resolve().as_uri(), tmp / "screenshot.png", timeout))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
