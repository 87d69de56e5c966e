"""The Met crawler: records from the Collection API, then the original image of each object.

Stages per object (one asyncio task per concurrency slot, all in one process):

1. the record ``GET {api}/objects/{id}`` through the API host's adaptive rate limiter; stored
   in ``crawl.sqlite`` once fetched, so a rerun never asks for it again;
2. a final outcome without download when the object is not public domain, has no
   ``primaryImage``, or the image lives on a host that is not allowed;
3. the ``primaryImage`` (the original, never ``primaryImageSmall``) streamed to a temporary
   file in ``images/`` (see :class:`_Sink`: ~2 MiB at a time, copied into a 1 MiB page-aligned
   buffer, hashed and written with ``O_DIRECT`` in a worker thread without the GIL), its length checked
   against ``Content-Length``, its header parsed (size, EXIF orientation, pixel limit),
   ``fdatasync``-ed and renamed to ``images/<objectID>.<ext>``; only then does its row say
   ``downloaded``.

Transient faults (timeouts, resets, 403/429/5xx, HTML where JSON was expected, truncated or
undecodable bodies) are retried with exponential back-off and jitter; permanent outcomes are
recorded once. Failures are values (:class:`Outcome`), never exceptions out of the loop; the
one exception is the environment failing the run itself (a full disk): every download in
flight is then cancelled and cleaned up, the state keeps its last commit, and the error
reaches the caller once.

Hostile answers are bounded: a record is read as a stream and capped at
:data:`MAX_RECORD_BYTES` decoded bytes, with a total deadline; it is checked against the
fields the crawler uses (:func:`record_problem`), and a malformed, oversized or absurdly nested
one is the final outcome ``bad_record``. Images are asked for without compression; an image
body must keep up :data:`DEFAULT_MIN_SPEED` bytes/s over every ``timeout`` window (a trickle
is closed and retried), and its decoded size is capped by ``max_bytes`` whatever its encoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import math
import mmap
import os
import random
import resource
import tempfile
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import aiohttp
from tqdm import tqdm

from methbuild.errors import UserError
from methbuild.executor import active_client
from methbuild.io.atomic import TMP_MARK, clean_stale_temps, ensure_writable_dir
from methbuild.io.imageinfo import probe
from methbuild.io.lock import folder_lock
from methbuild.met import state as st
from methbuild.met.ratelimit import HostLimiters, parse_retry_after

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_API_URL = "https://collectionapi.metmuseum.org/public/collection/v1"
MET_IMAGE_HOSTS = ("images.metmuseum.org",)
USER_AGENT = "methbuild-crawler/0.1 (research dataset builder; polite, rate-limited)"
DEFAULT_API_RATE = 10.0  # requests/s: well under the documented 80/s and the firewall's burst trigger
DEFAULT_IMAGE_RATE = 20.0
DEFAULT_CONCURRENCY = 16
DEFAULT_PIXEL_LIMIT = 300_000_000
DEFAULT_MAX_BYTES = 2 << 30
CHUNK = 1 << 20  # the page-aligned write buffer of each download: O_DIRECT writes of 1 MiB
BATCH = 2 << 20  # socket pieces handed to the worker thread per call (2 MiB: 3% less CPU than 1 MiB, +13 MB RSS)
WRITEBACK_EVERY = 8 << 20  # buffered fallback only: start writeback every 8 MiB
DEFAULT_DIRECT_IO = True  # O_DIRECT image writes where the file system allows them (else buffered)
DIRECT_ALIGN = 4096  # O_DIRECT: offsets, lengths and addresses in multiples of the block size
READ_BUFSIZE = 1 << 18  # aiohttp's buffer limit; 1 MiB measured no faster (the loop reads <= 256 KiB at once)
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "TIFF": "tif", "WEBP": "webp", "GIF": "gif", "BMP": "bmp",
              "JPEG2000": "jp2", "MPO": "jpg"}
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
MAX_RECORD_BYTES = 4 << 20  # decoded; real records are ~5 KB: more is a bomb, not a record
DEFAULT_MIN_SPEED = 16 << 10  # bytes/s an image body must keep up over every `timeout` window
IMAGE_HEADERS = {"Accept-Encoding": "identity"}  # images are compressed already; length checks need raw bytes
MAX_OBJECT_ID = 2**63 - 1  # SQLite's INTEGER (int64)


@dataclass
class Outcome:
    """What one attempt on one object gave: a final status, or a transient error to retry."""

    status: str | None = None  # a final status (state.FINAL), None for a transient failure
    error: str | None = None
    retry_after: float | None = None
    url: str | None = None
    image: dict | None = None  # image_file, nbytes, sha256, width, height, content_type
    host: str | None = None  # a refusal because of this host (re-evaluated against --allow-host every run)


@dataclass
class CrawlReport:
    """Counts per status over the whole state, and what this run did."""

    counts: dict[str, int]
    downloaded_now: int = 0
    adopted: int = 0
    retries: int = 0
    bytes_now: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0  # of this process, measured when fetching ended (before the export)
    errors: dict[str, int] = field(default_factory=dict)  # transient errors seen, by kind
    out: Path | None = None

    @property
    def unfinished(self) -> int:
        return self.counts.get(st.PENDING, 0) + self.counts.get(st.FAILED, 0)

    @property
    def exit_code(self) -> int:
        """0 when every object reached a final state, 1 when transient failures remain."""
        return 0 if self.unfinished == 0 else 1

    def summary(self) -> str:
        c = self.counts
        total = sum(c.values())
        lines = [f"objects: {total} — downloaded {c[st.DOWNLOADED]}, not found {c[st.NOT_FOUND]}, "
                 f"not public domain {c[st.NOT_PUBLIC_DOMAIN]}, no image {c[st.NO_IMAGE]}, "
                 f"refused {c[st.REFUSED]}, bad record {c[st.BAD_RECORD]}, failed (transient, rerun to retry) {c[st.FAILED]}, "
                 f"pending {c[st.PENDING]}"]
        rate = self.downloaded_now / self.seconds if self.seconds > 0 else 0.0
        lines.append(f"this run: {self.downloaded_now} images downloaded ({self.bytes_now / 1e6:.1f} MB, "
                     f"{rate:.1f}/s), {self.adopted} adopted from an interrupted run, {self.retries} retries, "
                     f"{self.seconds:.1f} s")
        if self.errors:
            lines.append("transient errors seen: " + ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())))
        return "\n".join(lines)


def read_ids(path: str | os.PathLike) -> list[int]:
    """Object IDs from a file, one per line (blank lines and ``#`` comments skipped).

    A line that is not a non-negative integer of ASCII digits below 2**63 is a :class:`UserError`
    naming its line number.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"ID file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read ID file {str(path)!r}: {exc}") from None
    ids: list[int] = []
    seen: set[int] = set()
    for n, line in enumerate(text.splitlines(), 1):
        s = line.split("#", 1)[0].strip()
        if not s:
            continue
        if not (s.isascii() and s.isdigit()):  # str.isdigit() alone takes '²', which int() refuses
            raise UserError(f"{str(path)!r} line {n}: {s[:40]!r} is not an integer object ID")
        i = int(s[:30])  # more digits than 30 are out of range anyway (and int() of 5000 digits is an error)
        if len(s) > 30 or i > MAX_OBJECT_ID:
            raise UserError(f"{str(path)!r} line {n}: object ID {s[:40]!r} is out of range (at most 2**63-1)")
        if i not in seen:
            seen.add(i)
            ids.append(i)
    return ids


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def record_problem(record: object, object_id: int) -> str | None:
    """What makes ``record`` unusable as the API record of ``object_id`` (None: nothing).

    Checks the types of the fields the crawler acts on, strictly: ``isPublicDomain`` must be a
    JSON boolean (the string ``"false"`` is not true), ``primaryImage`` a string or null.
    """
    if not isinstance(record, dict):
        return f"the record is a JSON {type(record).__name__}, not an object"
    if type(record.get("objectID")) is not int or record["objectID"] != object_id:
        return f"objectID is {record.get('objectID')!r:.40}, not {object_id}"
    pd_flag = record.get("isPublicDomain", None)
    if type(pd_flag) is not bool:
        return f"isPublicDomain is {_json_kind(pd_flag)} {pd_flag!r:.40}, not true or false"
    image = record.get("primaryImage")
    if image is not None and not isinstance(image, str):
        return f"primaryImage is {_json_kind(image)} {image!r:.40}, not a URL string"
    return None


def _json_kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(value), type(value).__name__)


def _probe_and_hash_file(path: str) -> tuple[object, str, int]:
    """Header facts, sha256 and size of a finished file (adopting an image from a killed run)."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
    return _probe(path), h.hexdigest(), n


def _probe(path: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return probe(path)


def _peak_rss_mb() -> float:
    """Peak RSS of this process. VmHWM belongs to the address space; ``ru_maxrss`` would include
    the high-water mark of a parent that spawned us, so it is only the fallback."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _address(buf) -> int:
    """The address of a buffer's first byte (a bytes object or a writable mmap)."""
    if isinstance(buf, bytes):
        return ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value or 0
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


class _Sink:
    """Where one download's bytes go: hashed, copied into a page-aligned buffer and written to a
    temp file with ``O_DIRECT`` where the file system allows it (from our buffer to the disk: no
    copy into the page cache, no writeback work later), else buffered with early writeback.

    All of it runs in a worker thread, one call per ~2 MiB of pieces, without the GIL: hashing
    and writing release it, and so does the copy (``ctypes.memmove``); the event loop only
    gathers the pieces the socket delivered."""

    def __init__(self, fd: int, buf: mmap.mmap, direct: bool) -> None:
        self.fd, self.buf, self.h = fd, buf, hashlib.sha256()
        self.base = _address(buf)
        self.pos = 0  # bytes in the buffer
        self.written = 0  # bytes in the file
        self.direct = direct
        if direct:
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_DIRECT)
            except (OSError, AttributeError):
                self.direct = False

    def _write(self, length: int) -> None:
        view = memoryview(self.buf)[:length]
        try:
            while view:
                try:
                    done = os.write(self.fd, view)
                except OSError as exc:
                    if not (self.direct and exc.errno == errno.EINVAL):
                        raise
                    self._buffered()  # the file system refused O_DIRECT after all
                    continue
                view = view[done:]
        finally:
            view.release()

    def _buffered(self) -> None:
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        self.direct = False

    def _flush(self) -> None:
        """Hash and write the full buffer."""
        with memoryview(self.buf) as view:
            self.h.update(view)  # one call per MiB: each call releases and retakes the GIL
        self._write(CHUNK)
        before, self.written, self.pos = self.written, self.written + CHUNK, 0
        if not self.direct and self.written // WRITEBACK_EVERY != before // WRITEBACK_EVERY:
            # Start writeback now (Linux: DONTNEED writes dirty pages back, then drops them), so
            # the final fdatasync waits for the tail only and the images do not crowd the page cache.
            with contextlib.suppress(OSError, AttributeError):
                os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def consume(self, pieces: list[bytes]) -> None:
        """Append the pieces to the buffer; full buffers are hashed and written at once."""
        for piece in pieces:
            if not isinstance(piece, (bytes, bytearray)):  # aiohttp hands over bytes; anything else is copied
                piece = bytes(piece)
            size, off = len(piece), 0
            src = _address(piece)
            while off < size:
                take = min(CHUNK - self.pos, size - off)
                ctypes.memmove(self.base + self.pos, src + off, take)
                self.pos += take
                off += take
                if self.pos == CHUNK:
                    self._flush()

    def finish(self, pieces: list[bytes]) -> int:
        """Consume the last pieces, write the tail and make the file durable; return its size."""
        self.consume(pieces)
        size = self.written + self.pos
        if self.pos:
            with memoryview(self.buf) as view:
                self.h.update(view[:self.pos])
            if self.direct and self.pos % DIRECT_ALIGN:
                # O_DIRECT writes whole blocks: write the padded block, then cut the file to size.
                self._write(self.pos + DIRECT_ALIGN - self.pos % DIRECT_ALIGN)
                os.ftruncate(self.fd, size)
            else:
                self._write(self.pos)
        os.fdatasync(self.fd)  # data and size on disk before the name: no empty file after a power cut
        return size


class _Watchdog:
    """Closes a response whose body delivers less than ``min_speed`` bytes/s over a window of
    ``timeout`` seconds, or nothing at all (detected within 2x ``timeout``): a stall or a trickle.

    It replaces aiohttp's per-read timeout on image bodies, which re-arms a timer for every piece
    the socket delivers (~70 per 17 MB image); this one wakes up once per ``timeout``."""

    def __init__(self, resp: aiohttp.ClientResponse, timeout: float, min_speed: float = 0.0) -> None:
        self.resp, self.timeout = resp, timeout
        self.received = 0  # bumped by the reader for every piece
        self.fired: str | None = None  # why the body was closed
        self._floor = min_speed * timeout  # bytes each window must bring
        self._seen = -1
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(timeout, self._check)
        if resp.connection is not None:
            resp.connection.protocol.read_timeout = None  # this request only: set again for the next one

    def _check(self) -> None:
        got = self.received - self._seen if self._seen >= 0 else self.received
        if got <= 0 or got < self._floor:
            self.fired = (f"no data for {self.timeout:g} s" if got <= 0 else
                          f"{got} bytes in {self.timeout:g} s, below the minimum of {self._floor / self.timeout:.0f} bytes/s")
            self.resp.close()  # the reader gets a ClientConnectionError
        else:
            self._seen = self.received
            self._handle = self._loop.call_later(self.timeout, self._check)

    def cancel(self) -> None:
        self._handle.cancel()


class _BufferPool:
    """Page-aligned buffers (O_DIRECT needs aligned memory), reused across downloads."""

    def __init__(self) -> None:
        self._free: list[mmap.mmap] = []

    def get(self) -> mmap.mmap:
        return self._free.pop() if self._free else mmap.mmap(-1, CHUNK)

    def put(self, buf: mmap.mmap) -> None:
        self._free.append(buf)


class _TransientError(Exception):
    def __init__(self, message: str, kind: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind, self.retry_after = kind, retry_after


def _raise_unless_ok(resp: aiohttp.ClientResponse, lim, who: str, kind: str) -> None:
    """A transient error for any status but 200; 403/429/5xx also slow the host down (Retry-After honoured)."""
    if resp.status == 200:
        return
    ra = None
    if resp.status in (403, 429) or resp.status >= 500:
        ra = parse_retry_after(resp.headers.get("Retry-After"))
        lim.on_throttle(ra)
    raise _TransientError(f"{who} answered HTTP {resp.status}", f"{kind}_{resp.status}", ra)


class Crawler:
    """One crawl over an output folder; see :func:`crawl`."""

    def __init__(self, out: Path, *, api_url: str, concurrency: int, api_rate: float, image_rate: float,
                 allow_hosts: Sequence[str], retries: int, retry_base: float, retry_max: float,
                 timeout: float, pixel_limit: int, max_bytes: int, progress: bool, direct_io: bool = True,
                 min_speed: float = DEFAULT_MIN_SPEED) -> None:
        self.out = out
        self.images = out / "images"
        self.api_url = api_url.rstrip("/")
        self.api_host = _host(self.api_url)
        self.allowed = {h.lower() for h in (*MET_IMAGE_HOSTS, self.api_host, *allow_hosts) if h}
        self.concurrency = concurrency
        self.api_limits = HostLimiters(api_rate)
        self.image_limits = HostLimiters(image_rate)
        self.retries, self.retry_base, self.retry_max = retries, retry_base, retry_max
        self.timeout, self.pixel_limit, self.max_bytes = timeout, pixel_limit, max_bytes
        self.min_speed = min_speed
        self.progress = progress
        self.report = CrawlReport(counts={})
        self.bar: tqdm | None = None
        self.state: st.CrawlState | None = None
        self._rng = random.Random()
        # hashing, writing, fsync and header parsing: off the event loop (a slow fsync must not stall hashing)
        self._io_pool = ThreadPoolExecutor(max_workers=min(64, concurrency + 2), thread_name_prefix="crawl-io")
        self._buffers = _BufferPool()
        self.direct_io = direct_io

    # ------------------------------------------------------------ HTTP
    async def _fetch_record(self, session: aiohttp.ClientSession, object_id: int) -> Outcome | dict:
        url = f"{self.api_url}/objects/{object_id}"
        lim = self.api_limits[self.api_host]
        await lim.acquire()
        try:
            for _hop in range(MAX_REDIRECTS + 1):
                # A total deadline per request (headers and body): a record trickling in is a timeout.
                async with asyncio.timeout(self.timeout), session.get(url, allow_redirects=False) as resp:
                    if resp.status not in REDIRECTS:
                        body = await self._read_record_body(resp)
                        break
                    nxt = self._redirect(url, resp, "API ", "api_redirect")
                if isinstance(nxt, Outcome):  # records come from the API host (or an allowed one) only
                    return nxt
                url = nxt
            else:
                return Outcome(st.REFUSED, f"more than {MAX_REDIRECTS} API redirects", url=url)
            if body is None:
                lim.on_success()
                return Outcome(st.BAD_RECORD, f"API record larger than {MAX_RECORD_BYTES} bytes (decoded)", url=url)
            ctype = resp.headers.get("Content-Type", "")
            if resp.status == 404:
                lim.on_success()
                return Outcome(st.NOT_FOUND, f"API answered 404 for object {object_id}", url=url)
            _raise_unless_ok(resp, lim, "API", "api")
            head = body[:256].lstrip().lower()
            if "html" in ctype.lower() or head.startswith((b"<!doctype", b"<html")):
                lim.on_throttle()  # the firewall's page: back off like for a 403
                raise _TransientError("API answered an HTML page instead of JSON", "api_html")
            try:
                record = json.loads(body)
            except ValueError:
                raise _TransientError("API answered a body that is not JSON", "api_bad_json") from None
            except RecursionError:  # not a ValueError: JSON nested deeper than the parser's recursion
                lim.on_success()
                return Outcome(st.BAD_RECORD, "API record is nested too deeply to be a record", url=url)
            if not isinstance(record, dict) or record.get("objectID") != object_id:
                raise _TransientError("API answered JSON that is not this object's record", "api_bad_json")
            lim.on_success()
            problem = record_problem(record, object_id)
            if problem is not None:
                return Outcome(st.BAD_RECORD, f"malformed API record: {problem}", url=url)
            return record
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
            raise _TransientError(f"API request failed: {type(exc).__name__}: {exc}".rstrip(": "),
                                  "api_network") from None

    @staticmethod
    async def _read_record_body(resp: aiohttp.ClientResponse) -> bytes | None:
        """The decoded body, streamed (never inflated whole); None when it passes MAX_RECORD_BYTES."""
        pieces: list[bytes] = []
        size = 0
        async for piece in resp.content.iter_any():
            size += len(piece)
            if size > MAX_RECORD_BYTES:
                return None
            pieces.append(piece)
        return b"".join(pieces)

    def _redirect(self, url: str, resp: aiohttp.ClientResponse, what: str, kind: str) -> str | Outcome:
        """The next URL of a redirect, or a refusal when it leaves the allowed hosts (never asked)."""
        loc = resp.headers.get("Location")
        if not loc:
            raise _TransientError(f"{what}redirect without Location from {_host(url)}", kind)
        nxt = urljoin(url, loc)
        if _host(nxt) not in self.allowed or urlsplit(nxt).scheme not in ("http", "https"):
            return Outcome(st.REFUSED, f"{what}redirect to foreign host {_host(nxt)!r} refused ({url} -> {nxt})",
                           url=url, host=_host(nxt) if urlsplit(nxt).scheme in ("http", "https") else None)
        return nxt

    async def _download(self, session: aiohttp.ClientSession, object_id: int, url: str) -> Outcome:
        for _hop in range(MAX_REDIRECTS + 1):
            host = _host(url)
            if urlsplit(url).scheme not in ("http", "https"):
                return Outcome(st.REFUSED, f"image URL scheme not allowed: {url}", url=url)
            if host not in self.allowed:
                return Outcome(st.REFUSED, f"image host {host!r} is not allowed (use --allow-host)", url=url,
                               host=host)
            lim = self.image_limits[host]
            await lim.acquire()
            try:
                # The headers within `timeout` in total (a server trickling them never gets to the body);
                # the body is then watched by _Watchdog (stall and minimum speed).
                async with asyncio.timeout(self.timeout) as deadline, \
                        session.get(url, allow_redirects=False, headers=IMAGE_HEADERS) as resp:
                    deadline.reschedule(None)
                    if resp.status in REDIRECTS:
                        nxt = self._redirect(url, resp, "", "img_redirect")
                        if isinstance(nxt, Outcome):
                            return nxt
                        url = nxt
                        continue
                    if resp.status in (404, 410):
                        lim.on_success()
                        return Outcome(st.NOT_FOUND, f"image host answered {resp.status}", url=url)
                    _raise_unless_ok(resp, lim, "image host", "img")
                    ctype = resp.headers.get("Content-Type", "")
                    if "html" in ctype.lower():
                        lim.on_throttle()
                        raise _TransientError("image host answered an HTML page", "img_html")
                    expected = resp.content_length
                    if expected is not None and expected > self.max_bytes:
                        return Outcome(st.REFUSED, f"image of {expected} bytes exceeds the byte limit", url=url)
                    if resp.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
                        # Encoded although we asked for identity: aiohttp decodes it, so Content-Length (the
                        # encoded length) says nothing about the bytes we get; max_bytes caps what we keep.
                        expected = None
                    self.state.note_announced(object_id, expected)  # what a resumed run may adopt
                    outcome = await self._stream(resp, object_id, url, expected, ctype)
                    lim.on_success()
                    return outcome
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
                raise _TransientError(f"image download failed: {type(exc).__name__}: {exc}".rstrip(": "),
                                      "img_network") from None
        return Outcome(st.REFUSED, f"more than {MAX_REDIRECTS} redirects", url=url)

    async def _stream(self, resp: aiohttp.ClientResponse, object_id: int, url: str, expected: int | None,
                      ctype: str) -> Outcome:
        fd, tmp = tempfile.mkstemp(prefix=f".{object_id}{TMP_MARK}", dir=self.images)
        done = False
        loop = asyncio.get_running_loop()
        buf = self._buffers.get()
        # The worker thread's call on this download: a concurrent future, which (unlike the asyncio
        # future awaiting it) is not done before the thread has let go of the buffer and the file.
        pending: Future | None = None

        def cleanup(_=None) -> None:
            self._buffers.put(buf)
            if fd >= 0:
                os.close(fd)
            if not done:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

        try:
            sink = _Sink(fd, buf, self.direct_io)
            # The event loop gathers the socket's pieces (up to 256 KiB each, as they arrive); every
            # ~BATCH goes to a worker thread that copies, hashes and writes them while the loop
            # gathers the next. Memory per download stays ~5 MiB, whatever the image size.
            pieces: list[bytes] = []
            gathered = n = 0
            watch = _Watchdog(resp, self.timeout, self.min_speed) if self.timeout else None
            try:
                async for piece in resp.content.iter_any():
                    pieces.append(piece)
                    gathered += len(piece)
                    if watch is not None:
                        watch.received += len(piece)
                    if gathered >= BATCH:
                        n += gathered
                        if n > self.max_bytes:
                            return Outcome(st.REFUSED, f"image larger than the byte limit ({self.max_bytes})",
                                           url=url)
                        if pending is not None:
                            await asyncio.wrap_future(pending)
                        pending = self._io_pool.submit(sink.consume, pieces)
                        pieces, gathered = [], 0
            except aiohttp.ClientError:
                if watch is not None and watch.fired:
                    raise _TransientError(f"image download too slow: {watch.fired}", "img_slow") from None
                raise
            finally:
                if watch is not None:
                    watch.cancel()
            n += gathered
            if pending is not None:
                await asyncio.wrap_future(pending)
            if n > self.max_bytes:
                return Outcome(st.REFUSED, f"image larger than the byte limit ({self.max_bytes})", url=url)
            if expected is not None and n != expected:
                raise _TransientError(f"truncated body: {n} of {expected} bytes", "img_truncated")
            if n == 0:
                raise _TransientError("empty image body", "img_empty")
            pending = self._io_pool.submit(sink.finish, pieces)  # the tail, then fdatasync
            await asyncio.wrap_future(pending)
            self.direct_io = sink.direct
            try:
                info = await loop.run_in_executor(self._io_pool, _probe, tmp)
            except ValueError as exc:
                raise _TransientError(f"undecodable image: {exc}", "img_undecodable") from None
            if info.width * info.height > self.pixel_limit:
                return Outcome(st.REFUSED, f"{info.width}x{info.height} exceeds the pixel limit "
                               f"({self.pixel_limit} px; a decompression bomb?)", url=url)
            name = f"{object_id}.{EXTENSIONS.get(info.format, info.format.lower() or 'bin')}"
            os.replace(tmp, self.images / name)  # after the fdatasync: a final name only ever has complete data
            done = True
            self.report.bytes_now += n
            self.report.downloaded_now += 1
            return Outcome(st.DOWNLOADED, url=url, image=dict(
                image_file=f"images/{name}", nbytes=n, sha256=sink.h.hexdigest(), width=info.width,
                height=info.height, content_type=ctype.split(";")[0].strip() or None))
        finally:
            if pending is not None and not pending.done():
                # Cancelled (or failed) while a thread still works on the buffer and the file: clean up after it.
                pending.add_done_callback(cleanup)
            else:
                cleanup()

    # ------------------------------------------------------------ one object
    def _existing_image(self, object_id: int) -> Path | None:
        for ext in dict.fromkeys(EXTENSIONS.values()):
            p = self.images / f"{object_id}.{ext}"
            if p.exists():
                return p
        return None

    async def _attempt(self, session: aiohttp.ClientSession, object_id: int) -> Outcome:
        assert self.state is not None
        # A stored record that is damaged or of the wrong shape reads as None: it is fetched again.
        record = self.state.record(object_id, record_problem)
        if record is None:
            got = await self._fetch_record(session, object_id)
            if isinstance(got, Outcome):
                return got
            record = got
            self.state.save_record(object_id, record)
        if record["isPublicDomain"] is not True:
            return Outcome(st.NOT_PUBLIC_DOMAIN)
        url = (record.get("primaryImage") or "").strip()
        if not url:
            return Outcome(st.NO_IMAGE, "primaryImage is empty")
        existing = self._existing_image(object_id)
        if existing is not None:  # renamed by a run killed before it could record it
            loop = asyncio.get_running_loop()
            announced = self.state.announced(object_id)
            try:
                if announced is None or existing.stat().st_size != announced:
                    raise ValueError("not the length the server announced")  # truncated, or not ours: fetch again
                info, sha, n = await loop.run_in_executor(self._io_pool, _probe_and_hash_file, str(existing))
            except ValueError:
                existing.unlink()
            else:
                self.report.adopted += 1
                return Outcome(st.DOWNLOADED, url=url, image=dict(
                    image_file=f"images/{existing.name}", nbytes=n, sha256=sha, width=info.width,
                    height=info.height, content_type=None))
        return await self._download(session, object_id, url)

    async def _process(self, session: aiohttp.ClientSession, object_id: int) -> None:
        assert self.state is not None
        for attempt in range(self.retries + 1):
            try:
                outcome = await self._attempt(session, object_id)
            except _TransientError as exc:
                self.report.errors[exc.kind] = self.report.errors.get(exc.kind, 0) + 1
                last = attempt == self.retries
                self.state.note_attempt(object_id, str(exc), status=st.FAILED if last else None)
                if last:
                    self._tick("failed")
                    return
                self.report.retries += 1
                self._bar_postfix()
                delay = min(self.retry_max, self.retry_base * 2 ** attempt) * self._rng.uniform(0.5, 1.5)
                if exc.retry_after:
                    delay = max(delay, exc.retry_after)
                await asyncio.sleep(delay)
                continue
            img = outcome.image or {}
            self.state.finish(object_id, outcome.status, error=outcome.error, url=outcome.url,
                              image_file=img.get("image_file"), nbytes=img.get("nbytes"), sha256=img.get("sha256"),
                              width=img.get("width"), height=img.get("height"), content_type=img.get("content_type"),
                              refused_host=outcome.host if outcome.status == st.REFUSED else None)
            self._tick(outcome.status)
            return

    # ------------------------------------------------------------ the run
    def _tick(self, status: str) -> None:
        self._done[status] = self._done.get(status, 0) + 1
        if self.bar is not None:
            self.bar.update(1)
            self._bar_postfix()

    def _bar_postfix(self) -> None:
        if self.bar is not None:
            d = self._done
            self.bar.set_postfix_str(f"ok={d.get(st.DOWNLOADED, 0)} final={sum(d.get(s, 0) for s in st.FINAL) - d.get(st.DOWNLOADED, 0)} "
                                     f"failed={d.get('failed', 0)} retries={self.report.retries}", refresh=False)

    async def run(self, todo: list[int]) -> None:
        self._done: dict[str, int] = {}
        queue: asyncio.Queue[int] = asyncio.Queue()
        for oid in todo:
            queue.put_nowait(oid)
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_connect=self.timeout,
                                        sock_read=self.timeout)
        connector = aiohttp.TCPConnector(limit=self.concurrency * 2, limit_per_host=0, ttl_dns_cache=300)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector, auto_decompress=True,
                                         headers={"User-Agent": USER_AGENT}, read_bufsize=READ_BUFSIZE) as session:

            async def worker() -> None:
                while True:
                    try:
                        oid = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    await self._process(session, oid)

            with tqdm(total=len(todo), desc="crawl", unit="obj", disable=not self.progress, smoothing=0.05,
                      dynamic_ncols=True) as self.bar:
                tasks = [asyncio.create_task(worker()) for _ in range(min(self.concurrency, max(1, len(todo))))]
                try:
                    await asyncio.gather(*tasks)
                except BaseException:
                    # The run itself failed (a full disk, an interrupt): stop every other object now and
                    # wait for their clean-up, so the error is reported once and no task is left behind.
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    raise
            self.bar = None


def crawl(ids: Sequence[int], out: str | os.PathLike, *, api_url: str = DEFAULT_API_URL,
          concurrency: int = DEFAULT_CONCURRENCY, api_rate: float = DEFAULT_API_RATE,
          image_rate: float = DEFAULT_IMAGE_RATE, allow_hosts: Sequence[str] = (), progress: bool = True,
          retries: int = 6, retry_base: float = 1.0, retry_max: float = 60.0, timeout: float = 60.0,
          pixel_limit: int = DEFAULT_PIXEL_LIMIT, max_bytes: int = DEFAULT_MAX_BYTES,
          min_speed: float = DEFAULT_MIN_SPEED, export: bool = True) -> CrawlReport:
    """Crawl ``ids`` into ``out`` (resumable; see the module docstring); return the report.

    Every object registered in ``out/crawl.sqlite`` that has not reached a final state is
    (re)tried, so calling it again with more IDs adds them, and a rerun picks up failures.
    Objects refused because of their image host are tried again when ``allow_hosts`` now
    allows it. One run per ``out`` at a time: a second one gets a :class:`UserError` naming the
    holder. A full disk raises ``OSError(ENOSPC)`` with the state at its last commit.
    """
    if concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    for name, value, low in (("api_rate", api_rate, 0.0), ("image_rate", image_rate, 0.0),
                             ("timeout", timeout, 0.0), ("retry_base", retry_base, -1.0),
                             ("retry_max", retry_max, -1.0), ("min_speed", min_speed, -1.0)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > low):
            what = "> 0" if low == 0 else ">= 0"
            raise UserError(f"--{name.replace('_', '-')} must be a finite number {what}, not {value!r}")
    parts = urlsplit(api_url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port outside 0..65535
    except ValueError:
        raise UserError(f"--api-url {api_url!r} has a port outside 0-65535") from None
    if parts.scheme not in ("http", "https") or not _host(api_url):
        raise UserError(f"--api-url {api_url!r} is not an http(s) URL")
    bad_ids = [i for i in ids if not 0 <= int(i) <= MAX_OBJECT_ID]
    if bad_ids:
        raise UserError(f"object ID {bad_ids[0]} is out of range (0 to 2**63-1)")
    out = ensure_writable_dir(out, "crawl output folder")
    with folder_lock(out):
        return _crawl_locked(ids, out, api_url=api_url, concurrency=concurrency, api_rate=api_rate,
                             image_rate=image_rate, allow_hosts=allow_hosts, progress=progress, retries=retries,
                             retry_base=retry_base, retry_max=retry_max, timeout=timeout, pixel_limit=pixel_limit,
                             max_bytes=max_bytes, min_speed=min_speed, export=export)


def _crawl_locked(ids: Sequence[int], out: Path, *, api_url: str, concurrency: int, api_rate: float,
                  image_rate: float, allow_hosts: Sequence[str], progress: bool, retries: int, retry_base: float,
                  retry_max: float, timeout: float, pixel_limit: int, max_bytes: int, min_speed: float,
                  export: bool) -> CrawlReport:
    images = ensure_writable_dir(out / "images", "image folder")
    clean_stale_temps(images)
    # The crawler only parses headers; its own pixel limit replaces Pillow's process-wide bomb guard.
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    crawler_args = dict(api_url=api_url, concurrency=concurrency, api_rate=api_rate, image_rate=image_rate,
                        allow_hosts=tuple(allow_hosts), retries=retries, retry_base=retry_base, retry_max=retry_max,
                        timeout=timeout, pixel_limit=pixel_limit, max_bytes=max_bytes,
                        direct_io=DEFAULT_DIRECT_IO, min_speed=min_speed)
    crawler = Crawler(out, **crawler_args, progress=progress)
    t0 = time.perf_counter()
    with st.CrawlState(out / "crawl.sqlite") as state:
        crawler.state = state
        state.add_ids(ids)
        state.set_meta("api_url", api_url)
        state.verify(out)  # a tampered or damaged state is redone where it does not hold, never trusted
        state.reopen_refusals(crawler.allowed)
        todo = state.unfinished()
        try:
            if active_client() is not None:  # --scheduler: shards on Dask workers, the state written here
                from methbuild.met.distributed import run_on_dask

                run_on_dask(todo, state, out, crawler_args, crawler.report, progress)
            else:
                asyncio.run(crawler.run(todo))
        finally:
            crawler._io_pool.shutdown(wait=True)
            crawler.report.peak_rss_mb = _peak_rss_mb()
            crawler.report.seconds = time.perf_counter() - t0
            crawler.report.counts = state.counts()
            crawler.report.out = out
            if export:
                _export(state, out)
    return crawler.report


def _export(state: st.CrawlState, out: Path) -> None:
    from methbuild.io.tables import write_table  # pandas: imported only now, after the fetching

    df = state.objects_frame()
    write_table(df, out / "objects.parquet")
    write_table(df, out / "objects.csv")


def load_objects(out: str | os.PathLike) -> pd.DataFrame:
    """The export columns (``object_id,status,image_file,width,height,bytes,sha256,url,error``)
    of every object in ``out/crawl.sqlite``."""
    path = Path(out) / "crawl.sqlite"
    if not path.is_file():
        raise UserError(f"no crawl state at {str(path)!r}; run `methbuild crawl --out {out}` first")
    with st.CrawlState(path) as state:
        return state.objects_frame()


def load_records(out: str | os.PathLike) -> dict[int, dict]:
    """The API record (JSON) of every object whose record was fetched, by object ID."""
    path = Path(out) / "crawl.sqlite"
    if not path.is_file():
        raise UserError(f"no crawl state at {str(path)!r}; run `methbuild crawl --out {out}` first")
    with st.CrawlState(path) as state:
        return state.records(record_problem)

