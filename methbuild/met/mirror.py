"""A local mirror of the Met Collection API, for tests, benchmarks and the offline demo.

It speaks the API's shape (``/objects``, ``/objects/{id}``, ``/departments``), serves the
``MetObjects.csv`` its records come from and a real JPEG per public-domain object, and can
inject the faults the real service shows (SPEC §1): 429 with ``Retry-After``, 403 bursts,
500, connection resets, truncated bodies, HTML instead of JSON, slow answers, corrupt images,
and redirects to a foreign host. It never pretends to be the Met: it binds 127.0.0.1 only and
every response carries ``X-Methbuild-Mirror: 1``.

Records come from a MetObjects CSV (real rows) or are drawn synthetically from
:mod:`methbuild.met.vocab` with a seed. Image sizes follow the spread of real Met originals
(megapixels Q1 2.5 / median 6.1 / Q3 10.7, 11% above 12 MP; aspect ratios Q1 0.72 / median
0.98 / Q3 1.33), scaled by ``image_scale``; each image is generated deterministically from
(seed, object ID) and cached, so repeated GETs serve identical bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import math
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from aiohttp import web
from PIL import Image

from methbuild.errors import UserError
from methbuild.met import vocab
from methbuild.met.metadata import MET_COLUMNS, read_met_csv

API_PREFIX = "/public/collection/v1"

# Inverse CDF of real Met original sizes (SPEC §1), interpolated in log space.
_MP_Q = (0.0, 0.25, 0.5, 0.75, 0.89, 0.97, 0.995, 1.0)
_MP_V = (0.25, 2.5, 6.1, 10.7, 12.0, 14.5, 22.0, 66.6)
_AR_Q = (0.0, 0.01, 0.25, 0.515, 0.75, 0.99, 1.0)
_AR_V = (0.11, 0.3, 0.72, 1.0, 1.33, 3.0, 8.4)

FAULT_KINDS = ("429", "403", "500", "reset", "truncate", "html", "slow", "corrupt", "redirect")
# Kinds that `all=RATE` spreads its rate over: every transient fault of the real service.
# `redirect` (a permanent refusal by the crawler) is only injected when named.
_ALL_KINDS = ("429", "403", "500", "reset", "truncate", "html", "slow", "corrupt")
_FAULT_PARAMS = {"retry_after_s": 0.2, "burst_s": 0.5, "slow_s": 1.0}
_IMAGE_ONLY = {"corrupt", "redirect"}

DEPARTMENTS_JSON = {"departments": [{"departmentId": d, "displayName": name} for d, name, _ in vocab.DEPARTMENTS]}


@dataclass(frozen=True)
class FaultPlan:
    """Which faults to inject and how often (probabilities per request, summing to at most 1)."""

    rates: dict[str, float] = field(default_factory=dict)
    retry_after_s: float = _FAULT_PARAMS["retry_after_s"]
    burst_s: float = _FAULT_PARAMS["burst_s"]
    slow_s: float = _FAULT_PARAMS["slow_s"]

    @classmethod
    def parse(cls, spec: str | None) -> FaultPlan:
        """Parse ``"429=0.1,403=0.05,slow_s=2"`` or ``"all=0.3"`` (30% of requests, kinds equally)."""
        if not spec:
            return cls()
        rates: dict[str, float] = {}
        params = dict(_FAULT_PARAMS)
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            try:
                num = float(value)
            except ValueError:
                num = float("nan")
            if not sep or not math.isfinite(num) or num < 0:
                raise UserError(f"bad fault {part!r}: expected KIND=RATE with a number >= 0 "
                                f"(kinds: {', '.join(FAULT_KINDS)}, all; parameters: {', '.join(_FAULT_PARAMS)})")
            if key in _FAULT_PARAMS:
                params[key] = num
            elif key == "all":
                for k in _ALL_KINDS:
                    rates[k] = rates.get(k, 0.0) + num / len(_ALL_KINDS)
            elif key in FAULT_KINDS:
                rates[key] = rates.get(key, 0.0) + num
            else:
                raise UserError(f"unknown fault kind {key!r} (kinds: {', '.join(FAULT_KINDS)}, all; "
                                f"parameters: {', '.join(_FAULT_PARAMS)})")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise UserError(f"fault rates add up to {sum(rates.values()):.2f}; they must add up to at most 1")
        return cls(rates=rates, **params)


def draw_size(seed: int, object_id: int, image_scale: float = 1.0,
              mp_range: tuple[float, float] | None = None) -> tuple[int, int]:
    """Width and height of the mirror's image of ``object_id`` (the Met's spread, scaled)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(object_id, 1)))
    u, v = rng.random(2)
    if mp_range is None:
        mp = math.exp(np.interp(u, _MP_Q, np.log(_MP_V)))
    else:
        mp = mp_range[0] + u * (mp_range[1] - mp_range[0])
    ar = math.exp(np.interp(v, _AR_Q, np.log(_AR_V)))
    w = math.sqrt(mp * 1e6 * ar) * image_scale
    h = math.sqrt(mp * 1e6 / ar) * image_scale
    return max(8, round(w)), max(8, round(h))


def render_jpeg(seed: int, key: int, width: int, height: int, *, noise: float = 16.0, quality: int = 90) -> bytes:
    """A real JPEG of exactly ``width``×``height``: smooth colour fields plus film-like grain.

    Deterministic in (seed, key); the grain is a tiled block so rendering stays fast at 60 MP.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key, 2)))
    cells = rng.integers(0, 256, size=(int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3), dtype=np.uint8)
    im = Image.fromarray(cells, "RGB").resize((width, height), Image.BICUBIC)
    if noise > 0:
        arr = np.asarray(im, dtype=np.int16)
        t = 251  # a prime tile side, so the pattern does not line up with JPEG blocks
        tile = rng.normal(0.0, noise, size=(t, t, 3)).astype(np.int16)
        for y in range(0, height, t):
            for x in range(0, width, t):
                blk = arr[y:y + t, x:x + t]
                blk += tile[:blk.shape[0], :blk.shape[1]]
        im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# ---------------------------------------------------------------- records

def _year_fields(rng: np.random.Generator) -> tuple[str, int, int]:
    r = rng.random()
    if r < 0.40:  # an exact year in 1500–1900 (what MetH-Period keeps)
        y = int(rng.integers(1500, 1901))
        return (str(y) if rng.random() < 0.7 else f"dated {y}"), y, y
    if r < 0.70:  # a range in the same era
        a = int(rng.integers(1480, 1900))
        b = a + int(rng.integers(1, 60))
        return (f"ca. {a}–{b}" if rng.random() < 0.5 else f"{a}–{b}"), a, b
    if r < 0.88:  # antiquity
        a = -int(rng.integers(100, 3000))
        b = a + int(rng.integers(1, 300))
        c = (-a) // 100 + 1
        return f"{c}th century B.C.", a, b
    a = int(rng.integers(500, 1500))  # medieval and later ranges
    b = a + int(rng.integers(0, 150))
    if a == b:
        b += 1
    return f"{a // 100 + 1}th century", a, b


def _choose(rng: np.random.Generator, table: tuple[tuple[str, float], ...]) -> str:
    w = np.array([x[1] for x in table])
    return table[int(rng.choice(len(table), p=w / w.sum()))][0]


def synthetic_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` Met-like MetObjects rows (all 54 columns, as strings), deterministic in ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    gaps = rng.integers(1, 40, size=n)
    ids = 1000 + np.cumsum(gaps)
    rows = []
    for oid in ids:
        r = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(oid), 0)))
        dept_id, dept, classes = vocab.DEPARTMENTS[int(r.integers(len(vocab.DEPARTMENTS)))]
        date, begin, end = _year_fields(r)
        row = {c: "" for c in MET_COLUMNS}
        accession_year = int(r.integers(1870, 2021))
        row.update({
            "Object Number": f"{accession_year}.{int(r.integers(1, 700))}" + ("" if r.random() < .8 else ".0" + str(int(r.integers(1, 9)))),
            "Is Highlight": "True" if r.random() < 0.01 else "False",
            "Is Timeline Work": "True" if r.random() < 0.03 else "False",
            "Is Public Domain": "True" if r.random() < 0.85 else "False",
            "Object ID": str(int(oid)),
            "Gallery Number": "" if r.random() < 0.8 else f"{int(r.integers(100, 999)):03d}",
            "Department": dept,
            "AccessionYear": str(accession_year),
            "Object Name": vocab.OBJECT_NAMES[int(r.integers(len(vocab.OBJECT_NAMES)))],
            "Title": vocab.TITLES[int(r.integers(len(vocab.TITLES)))],
            "Culture": _choose(r, vocab.CULTURES),
            "Period": vocab.PERIODS[int(r.integers(len(vocab.PERIODS)))],
            "Object Date": date,
            "Object Begin Date": str(begin),
            "Object End Date": str(end),
            "Medium": _choose(r, vocab.MEDIUMS),
            "Classification": classes[int(r.integers(len(classes)))],
            "Credit Line": f"Rogers Fund, {accession_year}",
            "Link Resource": f"http://www.metmuseum.org/art/collection/search/{int(oid)}",
            "Repository": "Metropolitan Museum of Art, New York, NY",
        })
        rows.append(row)
    return rows


# CSV column -> API record field (what the real API calls it).
_CSV_TO_API = {
    "Object Number": "accessionNumber", "Is Highlight": "isHighlight", "Is Timeline Work": "isTimelineWork",
    "Is Public Domain": "isPublicDomain", "Gallery Number": "GalleryNumber", "Department": "department",
    "AccessionYear": "accessionYear", "Object Name": "objectName", "Title": "title", "Culture": "culture",
    "Period": "period", "Dynasty": "dynasty", "Reign": "reign", "Portfolio": "portfolio",
    "Artist Role": "artistRole", "Artist Prefix": "artistPrefix", "Artist Display Name": "artistDisplayName",
    "Artist Display Bio": "artistDisplayBio", "Artist Suffix": "artistSuffix",
    "Artist Alpha Sort": "artistAlphaSort", "Artist Nationality": "artistNationality",
    "Artist Begin Date": "artistBeginDate", "Artist End Date": "artistEndDate", "Artist Gender": "artistGender",
    "Artist ULAN URL": "artistULAN_URL", "Artist Wikidata URL": "artistWikidata_URL",
    "Object Date": "objectDate", "Object Begin Date": "objectBeginDate", "Object End Date": "objectEndDate",
    "Medium": "medium", "Dimensions": "dimensions", "Credit Line": "creditLine",
    "Geography Type": "geographyType", "City": "city", "State": "state", "County": "county",
    "Country": "country", "Region": "region", "Subregion": "subregion", "Locale": "locale", "Locus": "locus",
    "Excavation": "excavation", "River": "river", "Classification": "classification",
    "Rights and Reproduction": "rightsAndReproduction", "Link Resource": "objectURL",
    "Object Wikidata URL": "objectWikidata_URL", "Metadata Date": "metadataDate", "Repository": "repository",
}
_DEPT_CODE = {name: vocab.DEPARTMENT_CODES.get(d, "xx") for d, name, _ in vocab.DEPARTMENTS}


def _int_or_zero(s) -> int:
    try:
        return int(str(s).strip())
    except ValueError:
        return 0


def record_from_row(row: dict) -> dict:
    """The API record of one MetObjects row (image URLs are filled in per request)."""
    rec: dict = {"objectID": int(row["Object ID"])}
    for col, key in _CSV_TO_API.items():
        if col in row:
            v = row[col]
            if col in ("Is Highlight", "Is Timeline Work", "Is Public Domain"):
                v = v if isinstance(v, bool) else str(v).strip() == "True"
            elif col in ("Object Begin Date", "Object End Date"):
                v = _int_or_zero(v)
            else:
                v = "" if v is None else str(v)
            rec[key] = v
    rec.setdefault("isPublicDomain", False)
    rec.update({"additionalImages": [], "constituents": None, "tags": None})
    return rec


# ---------------------------------------------------------------- the server

@dataclass
class MirrorTruth:
    """What the mirror serves for one object: the image's size, byte count and sha256."""

    width: int
    height: int
    bytes: int
    sha256: str



@dataclass
class _CachedImage:
    """One rendered image in an anonymous in-memory file: a server hands such a file to the kernel
    (``sendfile``) instead of copying its bytes through user space for every request."""

    file: io.RawIOBase
    size: int

    @classmethod
    def of(cls, data: bytes) -> _CachedImage:
        if hasattr(os, "memfd_create"):
            f = io.FileIO(os.memfd_create("methbuild-mirror-image", os.MFD_CLOEXEC), "r+")  # the cache owns the file
        else:  # not Linux: an unlinked temporary file
            f = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115
        f.write(data)
        return cls(f, len(data))

    def read(self) -> bytes:
        return os.pread(self.file.fileno(), self.size, 0)


async def _send_image(request: web.Request, image: _CachedImage) -> web.StreamResponse:
    """A 200 with the image body, sent by ``sendfile`` (the loop falls back to read/write without it)."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "image/jpeg", "X-Methbuild-Mirror": "1"})
    resp.content_length = image.size
    await resp.prepare(request)
    if request.transport is None:
        raise ConnectionResetError("connection lost")
    await asyncio.get_running_loop().sendfile(request.transport, image.file, 0, image.size)
    await resp.write_eof()
    return resp


class Mirror:
    """The mirror's state: records, sizes, an image cache and the fault injector."""

    def __init__(self, *, metadata: Path | None = None, synthetic: int | None = None, seed: int = 0,
                 faults: str | None = None, image_scale: float = 1.0, noise: float = 16.0, quality: int = 90,
                 mp_range: tuple[float, float] | None = None, image_pool: int | None = None,
                 cache_bytes: int = 512 << 20, image_host: str | None = None) -> None:
        if (metadata is None) == (synthetic is None):
            raise UserError("give the mirror either --metadata CSV or --synthetic N")
        if image_scale <= 0:
            raise UserError("--image-scale must be > 0")
        self.seed, self.image_scale, self.noise, self.quality = seed, image_scale, noise, quality
        self.mp_range, self.image_pool = mp_range, image_pool
        self.image_host = image_host  # serve image URLs under another host name (same server)
        self.faults = FaultPlan.parse(faults)
        self._fault_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31,)))
        self._blocked_until = 0.0
        self.metadata_path: Path | None = None
        self.csv_bytes: bytes | None = None
        if metadata is not None:
            df = read_met_csv(metadata)
            self.metadata_path = Path(metadata)
            rows = df.to_dict("records")
        else:
            if synthetic < 0:
                raise UserError("--synthetic must be >= 0")
            rows = synthetic_rows(synthetic, seed)
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=list(MET_COLUMNS), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
            self.csv_bytes = ("\ufeff" + buf.getvalue()).encode("utf-8")
        self.records: dict[int, dict] = {}
        for row in rows:
            rec = record_from_row(row)
            self.records[rec["objectID"]] = rec
        self._cache: OrderedDict[tuple[int, str], _CachedImage] = OrderedDict()
        self._cache_bytes, self._cache_limit = 0, cache_bytes
        self._sha_by_key: dict[int, str] = {}  # sha256 of each rendered original (images are deterministic)
        self._len_by_key: dict[int, int] = {}
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}
        self.requests = 0
        self.faults_injected: dict[str, int] = {}
        self.image_gets: dict[int, int] = {}  # GETs of each object's original, served or faulted
        self.record_times: list[float] = []  # monotonic arrival time of every record GET (rate checks)

    # -- images
    def size_of(self, object_id: int) -> tuple[int, int]:
        return draw_size(self.seed, self._image_key(object_id), self.image_scale, self.mp_range)

    def _image_key(self, object_id: int) -> int:
        return object_id % self.image_pool if self.image_pool else object_id

    def render(self, object_id: int, variant: str) -> bytes:
        w, h = self.size_of(object_id)
        if variant == "web-large":  # the compressed copy the crawler must never take
            s = min(1.0, 1024 / max(w, h))
            w, h = max(8, round(w * s)), max(8, round(h * s))
            return render_jpeg(self.seed, self._image_key(object_id), w, h, noise=0, quality=60)
        return render_jpeg(self.seed, self._image_key(object_id), w, h, noise=self.noise, quality=self.quality)

    def _render_with_truth(self, object_id: int, variant: str) -> tuple[bytes, str]:
        data = self.render(object_id, variant)
        return data, hashlib.sha256(data).hexdigest()  # in the worker thread, not on the event loop

    async def image_file(self, object_id: int, variant: str) -> _CachedImage:
        """The rendered image, cached in an anonymous in-memory file (served with ``sendfile``)."""
        key = (self._image_key(object_id), variant)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._cache.get(key)
            if cached is None:
                data, sha = await asyncio.get_running_loop().run_in_executor(
                    None, self._render_with_truth, object_id, variant)
                if variant == "original":
                    self._sha_by_key[key[0]], self._len_by_key[key[0]] = sha, len(data)
                cached = self._cache[key] = _CachedImage.of(data)
                self._cache_bytes += cached.size
                while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
                    _, old = self._cache.popitem(last=False)  # closed when the last response using it ends
                    self._cache_bytes -= old.size
        self._locks.pop(key, None)
        return cached

    async def image_bytes(self, object_id: int, variant: str) -> bytes:
        return (await self.image_file(object_id, variant)).read()

    def truth(self, object_id: int) -> MirrorTruth:
        """What the mirror serves (or will serve) as the original image of ``object_id``."""
        key = self._image_key(object_id)
        if key not in self._sha_by_key:
            data, self._sha_by_key[key] = self._render_with_truth(object_id, "original")
            self._len_by_key[key] = len(data)
        w, h = self.size_of(object_id)
        return MirrorTruth(w, h, self._len_by_key[key], self._sha_by_key[key])

    # -- faults
    def _draw_fault(self, image: bool) -> str | None:
        loop_time = asyncio.get_running_loop().time()
        if loop_time < self._blocked_until:  # inside a 403 burst: the firewall keeps refusing
            return "403"
        u = self._fault_rng.random()
        acc = 0.0
        for kind, rate in self.faults.rates.items():
            acc += rate
            if u < acc:
                if kind in _IMAGE_ONLY and not image:
                    return None
                if kind == "truncate" and not image:
                    return None
                if kind == "403":
                    self._blocked_until = loop_time + self.faults.burst_s
                self.faults_injected[kind] = self.faults_injected.get(kind, 0) + 1
                return kind
        return None

    async def _fault_response(self, request: web.Request, kind: str, body: bytes | None = None,
                              content_type: str = "application/json") -> web.StreamResponse | None:
        """The faulty answer of ``kind``; None when the fault only delays (``slow``)."""
        if kind == "429":
            return web.json_response({"message": "Too Many Requests"}, status=429,
                                     headers={"Retry-After": f"{self.faults.retry_after_s:g}"})
        if kind == "403":
            return web.Response(status=403, text="<html><body><h1>Access Denied</h1></body></html>",
                                content_type="text/html")
        if kind == "500":
            return web.json_response({"message": "Internal Server Error"}, status=500)
        if kind == "html":  # status 200, but a firewall page where JSON (or an image) was expected
            return web.Response(status=200, text="<!DOCTYPE html><html><head><title>Incapsula incident"
                                "</title></head><body>Request unsuccessful.</body></html>", content_type="text/html")
        if kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client: the connection is gone
        if kind == "slow":
            await asyncio.sleep(self.faults.slow_s)
            return None
        if kind == "truncate" and body is not None:
            resp = web.StreamResponse(status=200, headers={"Content-Type": content_type})
            resp.content_length = len(body)
            await resp.prepare(request)
            await resp.write(body[: max(1, len(body) // 2)])
            if request.transport is not None:
                request.transport.abort()
            return resp
        if kind == "corrupt" and body is not None:
            bad = bytearray(body)
            bad[:64] = bytes(64)  # the header is gone: no image parser accepts it
            return web.Response(body=bytes(bad), content_type=content_type)
        if kind == "redirect":
            host = "localhost" if request.url.host != "localhost" else "127.0.0.2"
            loc = request.url.with_host(host)
            return web.Response(status=302, headers={"Location": str(loc)})
        return None

    # -- handlers
    def _image_url(self, request: web.Request, rec: dict, variant: str) -> str:
        code = _DEPT_CODE.get(rec.get("department", ""), "xx")
        host = request.host
        if self.image_host:
            host = f"{self.image_host}:{request.url.port}" if request.url.port else self.image_host
        return f"{request.scheme}://{host}/CRDImages/{code}/{variant}/{rec['objectID']}.jpg"

    async def handle_object(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.record_times.append(time.monotonic())
        kind = self._draw_fault(image=False)
        if kind:
            resp = await self._fault_response(request, kind)
            if resp is not None:
                return resp
        try:
            oid = int(request.match_info["oid"])
        except ValueError:
            return web.json_response({"message": "Not a valid object"}, status=404)
        rec = self.records.get(oid)
        if rec is None:
            return web.json_response({"message": "ObjectID not found"}, status=404)
        out = dict(rec)
        if rec.get("isPublicDomain"):
            out["primaryImage"] = self._image_url(request, rec, "original")
            out["primaryImageSmall"] = self._image_url(request, rec, "web-large")
        else:
            out["primaryImage"] = out["primaryImageSmall"] = ""
        return web.json_response(out)

    async def handle_objects(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        kind = self._draw_fault(image=False)
        if kind:
            resp = await self._fault_response(request, kind)
            if resp is not None:
                return resp
        ids = sorted(self.records)
        dep = request.query.get("departmentIds")
        if dep:
            wanted = {name for d, name, _ in vocab.DEPARTMENTS if str(d) in dep.split("|")}
            ids = [i for i in ids if self.records[i].get("department") in wanted]
        return web.json_response({"total": len(ids), "objectIDs": ids})

    async def handle_departments(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        return web.json_response(DEPARTMENTS_JSON)

    async def handle_image(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        stem = request.match_info["name"].rsplit(".", 1)[0]
        variant = request.match_info["variant"]
        try:
            oid = int(stem)
        except ValueError:
            raise web.HTTPNotFound() from None
        rec = self.records.get(oid)
        if rec is None or not rec.get("isPublicDomain") or variant not in ("original", "web-large"):
            raise web.HTTPNotFound()
        if variant == "original":
            self.image_gets[oid] = self.image_gets.get(oid, 0) + 1
        kind = self._draw_fault(image=True)
        if kind in ("429", "403", "500", "html", "reset", "redirect"):
            return await self._fault_response(request, kind)
        if kind == "slow":
            await self._fault_response(request, kind)
        if kind in ("truncate", "corrupt"):
            data = await self.image_bytes(oid, variant)
            return await self._fault_response(request, kind, data, "image/jpeg")
        return await _send_image(request, await self.image_file(oid, variant))

    async def handle_truth(self, request: web.Request) -> web.StreamResponse:
        oid = int(request.match_info["oid"])
        if oid not in self.records:
            raise web.HTTPNotFound()
        t = await asyncio.get_running_loop().run_in_executor(None, self.truth, oid)
        return web.json_response(t.__dict__)

    async def handle_csv(self, request: web.Request) -> web.StreamResponse:
        if self.metadata_path is not None:
            return web.FileResponse(self.metadata_path, headers={"Content-Type": "text/csv"})
        return web.Response(body=self.csv_bytes, content_type="text/csv", charset="utf-8")

    def app(self) -> web.Application:
        @web.middleware
        async def mark(request, handler):
            resp = await handler(request)
            resp.headers["X-Methbuild-Mirror"] = "1"
            return resp

        app = web.Application(middlewares=[mark])
        app.add_routes([
            web.get(API_PREFIX + "/objects", self.handle_objects),
            web.get(API_PREFIX + "/objects/{oid}", self.handle_object),
            web.get(API_PREFIX + "/departments", self.handle_departments),
            web.get("/CRDImages/{code}/{variant}/{name}", self.handle_image),
            web.get("/MetObjects.csv", self.handle_csv),
            web.get("/mirror/truth/{oid}", self.handle_truth),
        ])
        return app


async def _start(mirror: Mirror, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(mirror.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock = site._server.sockets[0]  # type: ignore[union-attr] - the bound port when port=0
    return runner, sock.getsockname()[1]


class MirrorURL(str):
    """The API base URL of a running mirror; ``.mirror`` is the :class:`Mirror` (for its truth)."""

    mirror: Mirror
    root: str


@contextlib.contextmanager
def serve_in_thread(*, metadata: Path | None = None, synthetic: int | None = None, seed: int = 0,
                    faults: str | None = None, port: int = 0, image_scale: float = 1.0,
                    **options) -> Iterator[MirrorURL]:
    """Run a mirror on 127.0.0.1 in a background thread; yield its API base URL.

    Extra ``options`` go to :class:`Mirror` (``noise``, ``quality``, ``mp_range``, ``image_pool``,
    ``image_host``).
    """
    mirror = Mirror(metadata=metadata, synthetic=synthetic, seed=seed, faults=faults,
                    image_scale=image_scale, **options)
    loop = asyncio.new_event_loop()
    started: dict = {}
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            started["runner"], started["port"] = loop.run_until_complete(_start(mirror, "127.0.0.1", port))
        except BaseException as exc:  # reported in the caller's thread
            started["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(started["runner"].cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="met-mirror", daemon=True)
    thread.start()
    ready.wait()
    if "error" in started:
        raise started["error"]
    root = f"http://127.0.0.1:{started['port']}"
    url = MirrorURL(root + API_PREFIX)
    url.mirror, url.root = mirror, root
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def serve_forever(mirror: Mirror, port: int, on_ready=None) -> None:
    """Run a mirror in the foreground until interrupted (the `methbuild mirror` command)."""

    async def main() -> None:
        runner, bound = await _start(mirror, "127.0.0.1", port)
        if on_ready:
            on_ready(f"http://127.0.0.1:{bound}")
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


__all__ = ["API_PREFIX", "FAULT_KINDS", "FaultPlan", "Mirror", "MirrorTruth", "MirrorURL", "draw_size",
           "record_from_row", "render_jpeg", "serve_forever", "serve_in_thread", "synthetic_rows"]
