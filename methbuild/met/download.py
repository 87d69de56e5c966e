"""`methbuild met csv`: download MetObjects.csv from the Met's openaccess repository.

The file is stored with Git LFS, so the plain ``raw`` URL returns a ~130-byte pointer file;
the ``media`` URL returns the data. The download streams to a temporary name beside the
output, checks the byte count against ``Content-Length``, refuses an LFS pointer or an HTML
page, parses the file as MetObjects.csv, and only then renames it to its final name: a rejected
download never appears under the output name.

Hostile bodies are bounded: an unencoded body may not pass its ``Content-Length``; an encoded
one (decoded on the fly) may not pass :data:`MAX_CSV_BYTES`. One download per output folder at
a time (:func:`~methbuild.io.lock.folder_lock`); a full disk raises ``OSError(ENOSPC)`` and
leaves no file behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from tqdm import tqdm

from methbuild.errors import UserError
from methbuild.io.atomic import atomic_path, clean_stale_temps, ensure_writable_dir
from methbuild.io.lock import folder_lock
from methbuild.met.metadata import is_lfs_pointer, read_met_csv

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_CSV_URL = "https://media.githubusercontent.com/media/metmuseum/openaccess/master/MetObjects.csv"
USER_AGENT = "methbuild (research dataset builder; +https://github.com/)"
CHUNK = 1 << 20
MAX_CSV_BYTES = 2 << 30  # decoded, when the body is compressed (today's file: ~318 MB)
CHECK_COLUMNS = ("Object ID", "Is Public Domain")


def download_met_csv(url: str | None, out: str | os.PathLike, *, progress: bool = True,
                     timeout: float = 60.0) -> Path:
    """Download the MetObjects CSV from ``url`` (None: the Met's openaccess media URL) to ``out``."""
    return fetch_met_csv(url, out, progress=progress, timeout=timeout)[0]


def fetch_met_csv(url: str | None, out: str | os.PathLike, *, progress: bool = True,
                  timeout: float = 60.0) -> tuple[Path, pd.DataFrame]:
    """Download, check and rename into place; return the path and its ``Object ID``/``Is Public Domain``
    columns (read from the temporary file before the rename)."""
    url = url or DEFAULT_CSV_URL
    out = Path(out)
    folder = ensure_writable_dir(out.parent if str(out.parent) else Path("."), "output folder")
    if out.is_dir():
        raise UserError(f"--out {str(out)!r} is a folder; give the path of the CSV file to write")
    with folder_lock(folder, f"methbuild met csv --out {out}"):
        clean_stale_temps(folder)
        try:
            resp = requests.get(url, stream=True, timeout=timeout, headers={"User-Agent": USER_AGENT})
        except requests.RequestException as exc:
            raise UserError(f"cannot download {url}: {exc}") from None
        with resp, atomic_path(out) as tmp:
            _stream_to(resp, url, tmp, progress)
            df = read_met_csv(tmp, usecols=CHECK_COLUMNS, name=f"the file at {url}")  # before the rename
    return out, df


def _stream_to(resp: requests.Response, url: str, tmp: Path, progress: bool) -> None:
    if resp.status_code != 200:
        raise UserError(f"cannot download {url}: HTTP {resp.status_code}")
    expected = resp.headers.get("Content-Length", "").strip()
    expected_n = int(expected) if expected.isascii() and expected.isdigit() and len(expected) < 19 else None
    encoded = resp.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity")
    # Decoded bytes we accept: the announced length when the body is not encoded, else a fixed cap.
    limit = expected_n if expected_n is not None and not encoded else MAX_CSV_BYTES
    n = 0
    with open(tmp, "wb") as fh, tqdm(total=None if encoded else expected_n, unit="B", unit_scale=True,
                                     desc="MetObjects.csv", disable=True if not progress else None,
                                     leave=False) as bar:
        first = True
        try:
            for chunk in resp.iter_content(CHUNK):
                if first:
                    first = False
                    if is_lfs_pointer(chunk[:200]):
                        raise UserError(f"{url} returned a Git LFS pointer file, not the CSV; use the "
                                        "media.githubusercontent.com URL of the file")
                    head = chunk[:4096].lstrip(b"\xef\xbb\xbf").lower()
                    if head.startswith((b"<!doctype", b"<html")):
                        raise UserError(f"{url} returned an HTML page, not the CSV")
                    if b"object id" not in chunk[:8192].lower():
                        raise UserError(f"{url} does not look like MetObjects.csv (no 'Object ID' "
                                        "column in its header)")
                n += len(chunk)
                if n > limit:
                    what = (f"the {expected_n} bytes it announced" if limit == expected_n
                            else f"{limit} bytes decoded (a compression bomb?)")
                    raise UserError(f"{url} sent more than {what}; refused")
                fh.write(chunk)
                bar.update(len(chunk))
        except requests.RequestException as exc:
            raise UserError(f"download of {url} broke off after {n} bytes ({exc}); rerun to retry") from None
        if first:
            raise UserError(f"{url} returned an empty body")
        # Content-Length counts the bytes on the wire: the encoded ones when the body is compressed.
        got = resp.raw.tell() if encoded else n
        if expected_n is not None and got != expected_n:
            raise UserError(f"download of {url} is incomplete: {got} of {expected_n} bytes; rerun to retry")
