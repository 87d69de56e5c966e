"""Image sizes from the first bytes of a file, fast, with Pillow as the arbiter.

Statistics read the size of every image of a collection (100,000 per input in the paper), so
the per-file cost matters more than anything else. Pillow's lazy ``Image.open`` never decodes
pixels, but it still tries its format plugins in turn and builds an ``Image`` object; for the
formats that make up nearly every dataset (JPEG, PNG, GIF, BMP, WebP) the size sits at a known
place in the header and a few ``struct`` reads find it. Everything else (TIFF, WebP with EXIF,
JPEGs with unusual markers, anything that does not parse cleanly) goes to
:func:`methbuild.io.imageinfo.probe`, so the fast path never calls a file unreadable that Pillow
would read, and the sizes agree with Pillow's (the tests check both on every format).

Sizes are as a viewer shows the image: an EXIF orientation of 5–8 swaps width and height.

A second, cheap check looks at the end of the file: a JPEG without its end-of-image marker, a PNG
without ``IEND``, a GIF without its trailer, a RIFF/BMP shorter than its header says is reported
as *truncated*. A truncated file still has a trustworthy header size, so it stays in the
statistics and is listed as a problem.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass

# Worker processes import this module only. It must stay light: importing anything under
# ``methbuild.io`` runs that package's ``__init__``, which imports pandas (~0.3 s per worker), so
# Pillow's probe is imported only when a file needs it and the cache is written by _write_cache.
TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height (as methbuild.io.imageinfo)

HEAD_BYTES = 8192  # the first read: the header of nearly every PNG/GIF/BMP/WebP and most JPEGs
MORE_BYTES = 65536  # later reads (a JPEG's markers after a large EXIF or ICC block)
TAIL_BYTES = 4096

# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); not DHT/JPG/DAC.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_NO_LENGTH = {0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8}


class _Fallback(Exception):
    """The fast parser cannot decide: ask Pillow."""


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    format: str  # Pillow's format names: JPEG, PNG, GIF, BMP, WEBP, TIFF, ...
    truncated: bool = False


def _exif_orientation(seg: bytes) -> int:
    """The orientation tag of an ``Exif\\0\\0`` APP1 payload's IFD0 (1 when absent or broken)."""
    if not seg.startswith(b"Exif\x00\x00") or len(seg) < 14:
        return 1
    tiff = seg[6:]
    order = tiff[:2]
    if order == b"II":
        e = "<"
    elif order == b"MM":
        e = ">"
    else:
        return 1
    try:
        (ifd,) = struct.unpack_from(e + "I", tiff, 4)
        (n,) = struct.unpack_from(e + "H", tiff, ifd)
        for k in range(n):
            tag, typ, _count = struct.unpack_from(e + "HHI", tiff, ifd + 2 + 12 * k)
            if tag == 0x0112:
                if typ == 3:  # SHORT
                    return struct.unpack_from(e + "H", tiff, ifd + 2 + 12 * k + 8)[0]
                if typ == 4:  # LONG
                    return struct.unpack_from(e + "I", tiff, ifd + 2 + 12 * k + 8)[0]
                return 1
    except struct.error:
        return 1
    return 1


def _jpeg(fd: int, head: bytes, size: int) -> tuple[int, int, int]:
    """(width, height, orientation) from the markers before the first frame header."""
    buf, base = head, 0  # buf holds file bytes [base, base + len(buf)); usually the first read
    pos = 2
    orientation = 0  # 0 = no Exif APP1 seen yet (Pillow reads the first one)
    frame = None  # (width, height) once the frame header is seen
    unpack_from = struct.unpack_from
    while True:
        off = pos - base
        if off < 0 or off + 9 > len(buf):  # the next marker lies beyond what was read: read on
            if frame is not None:  # not worth another read just for a misplaced Exif block
                return frame[0], frame[1], 1
            if pos + 4 > size:
                raise _Fallback("no frame header")
            buf, base, off = os.pread(fd, MORE_BYTES, pos), pos, 0
            if len(buf) < 4:
                raise _Fallback("file ends inside the JPEG header")
        if buf[off] != 0xFF:
            raise _Fallback("garbage between markers")
        marker = buf[off + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _NO_LENGTH:
            pos += 2
            continue
        (length,) = unpack_from(">H", buf, off + 2)
        if length < 2:
            raise _Fallback("bad segment length")
        if marker in _SOF and frame is None:
            height, width = unpack_from(">HH", buf, off + 5)
            if width == 0 or height == 0:  # height defined later by a DNL marker: let Pillow say
                raise _Fallback("zero size in frame header")
            if orientation:
                return width, height, orientation
            frame = (width, height)  # Pillow reads markers up to the scan: an Exif block may still come
        elif marker == 0xE1 and orientation == 0:
            seg = buf[off + 4:off + 2 + length]
            if len(seg) < length - 2:
                seg = os.pread(fd, length - 2, pos + 4)
            if seg.startswith(b"Exif\x00\x00"):
                orientation = _exif_orientation(seg)
                if frame is not None:
                    return frame[0], frame[1], orientation
        elif marker == 0xDA or marker == 0xD9:  # the scan (or the end): no more header
            if frame is None:
                raise _Fallback("no frame header before scan")
            return frame[0], frame[1], 1
        pos += 2 + length


def _png(fd: int, head: bytes, size: int) -> tuple[int, int, int]:
    if head[12:16] != b"IHDR" or len(head) < 24:
        raise _Fallback("no IHDR")
    width, height = struct.unpack_from(">II", head, 16)
    # Pillow reads chunks up to the first IDAT; an eXIf chunk there can rotate the image.
    pos = 8
    while pos + 8 <= size:
        hdr = head[pos:pos + 8] if pos + 8 <= len(head) else os.pread(fd, 8, pos)
        if len(hdr) < 8:
            break
        length, ctype = struct.unpack(">I4s", hdr)
        if ctype in (b"IDAT", b"IEND"):
            break
        if ctype == b"eXIf":
            data = os.pread(fd, min(length, MORE_BYTES), pos + 8)
            return width, height, _exif_orientation(b"Exif\x00\x00" + data)
        pos += 12 + length
    return width, height, 1


def _webp(fd: int, head: bytes, size: int) -> tuple[int, int, int]:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", head, 26)
        return w & 0x3FFF, h & 0x3FFF, 1
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        (bits,) = struct.unpack_from("<I", head, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 1
    if chunk == b"VP8X" and len(head) >= 30 and not head[20] & 0x08:  # no EXIF chunk
        w = int.from_bytes(head[24:27], "little") + 1
        h = int.from_bytes(head[27:30], "little") + 1
        return w, h, 1
    raise _Fallback("WebP with EXIF or unusual layout")


def _bmp(fd: int, head: bytes, size: int) -> tuple[int, int, int]:
    (dib,) = struct.unpack_from("<I", head, 14)
    if dib == 12:
        w, h = struct.unpack_from("<HH", head, 18)
    elif dib in (40, 52, 56, 64, 108, 124):
        w, h = struct.unpack_from("<ii", head, 18)
        h = abs(h)
    else:
        raise _Fallback("unusual BMP header")
    if w <= 0 or h <= 0:
        raise _Fallback("bad BMP size")
    return w, h, 1


def _truncated(fmt: str, fd: int, head: bytes, size: int) -> bool:
    if fmt == "BMP" or fmt == "WEBP":
        declared = struct.unpack_from("<I", head, 2 if fmt == "BMP" else 4)[0] + (0 if fmt == "BMP" else 8)
        return size < declared
    tail = head if size <= len(head) else os.pread(fd, TAIL_BYTES, max(0, size - TAIL_BYTES))
    if fmt == "JPEG":
        return not tail.endswith(b"\xff\xd9") and b"\xff\xd9" not in tail[-TAIL_BYTES:]
    if fmt == "PNG":
        return tail[-8:-4] != b"IEND" and b"IEND" not in tail[-64:]
    if fmt == "GIF":
        return not tail.rstrip(b"\x00").endswith(b";")
    return False


def _fast(path) -> tuple[int, int, str, bool] | None:
    """(width, height, format, truncated) for the common formats, None to ask Pillow; ValueError if unopenable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never hang on a FIFO that slipped into a listing
    except OSError as exc:
        raise ValueError(f"cannot open: {exc.strerror or exc}") from None
    try:
        return _fast_fd(fd)
    except OSError as exc:  # a read error (EIO, a FIFO, a file that shrank): unreadable, not a crash
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _fast_fd(fd: int) -> tuple[int, int, str, bool] | None:
    """The header facts from an open file (see :func:`_fast`)."""
    head = os.pread(fd, HEAD_BYTES, 0)
    if not head:
        raise ValueError("not a readable image: empty file")
    size = len(head) if len(head) < HEAD_BYTES else os.fstat(fd).st_size  # a short read is the whole file
    try:
        if head[:3] == b"\xff\xd8\xff":
            fmt, (w, h, o) = "JPEG", _jpeg(fd, head, size)
        elif head[:8] == b"\x89PNG\r\n\x1a\n":
            fmt, (w, h, o) = "PNG", _png(fd, head, size)
        elif head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
            fmt, (w, h, o) = "GIF", (*struct.unpack_from("<HH", head, 6), 1)
            if w == 0 or h == 0:
                return None
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            fmt, (w, h, o) = "WEBP", _webp(fd, head, size)
        elif head[:2] == b"BM" and len(head) >= 26:
            fmt, (w, h, o) = "BMP", _bmp(fd, head, size)
        else:
            return None
    except (_Fallback, struct.error):
        return None
    if o in TRANSPOSED:
        w, h = h, w
    return w, h, fmt, _truncated(fmt, fd, head, size)


def read_header(path: str | bytes | os.PathLike) -> Header:
    """Size and format of one image from its header; raises ``ValueError`` if it is not a readable image."""
    r = _fast(path)
    if r is not None:
        return Header(*r)
    return _pillow_header(os.fsdecode(path))


@contextlib.contextmanager
def _headers_of_any_size():
    """Let Pillow open (never decode) an image of any declared size, as the fast parsers do.

    Pillow refuses to open an image declaring more than 2 × ``MAX_IMAGE_PIXELS`` (its decompression-bomb
    guard) and warns above 1 ×. Statistics decode nothing, so such a header is only a large size; the
    collection's summary lists it as a problem (:data:`methbuild.stats.collect.LARGE_PIXELS`).
    """
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _pillow_header(path: str) -> Header:
    """Pillow's verdict, through :func:`methbuild.io.imageinfo.probe`; raises ``ValueError`` if unreadable.

    Recent Pillow (13 here) already applies a TIFF's orientation tag to ``Image.size``, so ``probe``'s own
    swap undoes it; for a transposed TIFF the size is recomputed from the stored width/length tags.
    """
    from methbuild.io.imageinfo import probe

    try:
        with _headers_of_any_size():
            info = probe(path)
    except ValueError as exc:  # Pillow names the file; the caller knows it: keep the message short and shared
        raise ValueError(str(exc).replace(f" {path!r}", "").replace(f" '{path}'", "")) from None
    if info.format == "TIFF" and info.orientation in TRANSPOSED:
        from PIL import Image

        try:
            with Image.open(path) as im:
                stored_w, stored_h = int(im.tag_v2[256]), int(im.tag_v2[257])
            return Header(stored_h, stored_w, info.format)
        except Exception:  # a multi-page or odd TIFF: keep probe's answer
            pass
    return Header(info.width, info.height, info.format)


# --- chunked tasks for methbuild.executor.run_tasks -------------------------------------------------

CACHE_VERSION = "headers-2"  # 2: results carry their length and a checksum
HASH_VERSION = "sha256-2"


def chunk_cache_name(root: str, blob: bytes, kind: str = CACHE_VERSION) -> str:
    """A cache file name for one chunk: a hash of the kind of result, the root and the paths."""
    h = hashlib.sha1(kind.encode() + b"\0" + os.fsencode(root) + b"\0" + blob)
    return h.hexdigest() + ".json"


def _checksum(result: dict) -> str:
    return hashlib.sha256(json.dumps(result, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _write_cache(final: str, result: dict, n: int) -> None:
    """Write one chunk's result (for ``n`` files, with its checksum) under its final name complete or
    not at all (temp name + rename).

    The same protocol as :func:`methbuild.io.atomic.atomic_write_text` without the fsync (a lost
    cache file only costs a re-read), and without importing ``methbuild.io`` in the workers. A cache
    that cannot be written (a full disk) is not an error: the result is returned all the same, and the
    run's own tables then meet the full disk in the parent, where it is reported as one line.
    """
    folder, name = os.path.split(final)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=folder)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"n": n, "sum": _checksum(result), "result": result}, fh, separators=(",", ":"))
        os.replace(tmp, final)
    except OSError:
        _unlink(tmp)
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _load_cached(cache: str | None, n: int, valid) -> dict | None:
    """A cached chunk result, only if it is whole and untouched: ``n`` files, its checksum right and
    ``valid(result, n)`` true. Anything else (truncated, edited, from another version) is read again."""
    if not cache:
        return None
    try:
        with open(cache, encoding="utf-8") as fh:
            saved = json.load(fh)
        result = saved["result"]
        if saved["n"] != n or saved["sum"] != _checksum(result) or not valid(result, n):
            return None
        return result
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def _ints(v, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(type(x) is int for x in v)


def _strs(v, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(isinstance(x, str) for x in v)


def _errors(e, n: int) -> bool:
    return isinstance(e, dict) and all(k.isdigit() and int(k) < n and isinstance(m, str) for k, m in e.items())


def _valid_headers(r: dict, n: int) -> bool:
    return (_ints(r["w"], n) and _ints(r["h"], n) and _strs(r["f"], n) and isinstance(r["t"], list)
            and all(type(i) is int and 0 <= i < n for i in r["t"]) and _errors(r["e"], n))


def _valid_hashes(r: dict, n: int) -> bool:
    return _strs(r["s"], n) and _errors(r["e"], n)


def read_chunk(item: tuple[str, bytes, str | None]) -> dict:
    """Task: read the headers of one chunk of files.

    ``item`` is (root folder, NUL-joined relative paths as bytes, cache file or None). Returns
    ``{"w": [...], "h": [...], "f": [...], "t": [indices truncated], "e": {index: error}}``
    (width/height −1 where unreadable). With a cache file the result is written there atomically,
    and a chunk already cached is not read again (an interrupted run resumes).
    """
    root, blob, cache = item
    rels = blob.split(b"\0")
    done = _load_cached(cache, len(rels), _valid_headers)
    if done is not None:
        return done
    rootb = os.fsencode(root)
    ws, hs, fs, trunc, errs = [], [], [], [], {}
    join = os.path.join
    for i, rel in enumerate(rels):
        path = join(rootb, rel)
        try:
            r = _fast(path)
            if r is None:
                hd = _pillow_header(os.fsdecode(path))
                r = (hd.width, hd.height, hd.format, hd.truncated)
        except ValueError as exc:
            ws.append(-1)
            hs.append(-1)
            fs.append("")
            errs[str(i)] = str(exc)
            continue
        ws.append(r[0])
        hs.append(r[1])
        fs.append(r[2])
        if r[3]:
            trunc.append(i)
    out = {"w": ws, "h": hs, "f": fs, "t": trunc, "e": errs}
    if cache:
        _write_cache(cache, out, len(rels))
    return out


def hash_chunk(item: tuple[str, bytes, str | None]) -> dict:
    """Task: sha256 of the content of one chunk of files (``{"s": [hex or ""], "e": {index: error}}``)."""
    root, blob, cache = item
    rels = blob.split(b"\0")
    done = _load_cached(cache, len(rels), _valid_hashes)
    if done is not None:
        return done
    rootb = os.fsencode(root)
    digests, errs = [], {}
    for i, rel in enumerate(rels):
        h = hashlib.sha256()
        try:
            with open(os.path.join(rootb, rel), "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            digests.append(h.hexdigest())
        except OSError as exc:
            digests.append("")
            errs[str(i)] = f"cannot read: {exc.strerror or exc}"
    out = {"s": digests, "e": errs}
    if cache:
        _write_cache(cache, out, len(rels))
    return out
