"""`methbuild met csv`: download MetObjects.csv from the Met's openaccess repository.

The file is stored with Git LFS, so the plain ``raw`` URL returns a ~130-byte pointer file;
the ``media`` URL returns the data. The download streams to a temporary name beside the
output, checks the byte count against ``Content-Length``, refuses an LFS pointer or an HTML
page, and only then renames it to its final name.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import requests
from tqdm import tqdm

from methbuild.errors import UserError
from methbuild.io.atomic import atomic_path, clean_stale_temps, ensure_writable_dir
from methbuild.met.metadata import is_lfs_pointer

DEFAULT_CSV_URL = "https://media.githubusercontent.com/media/metmuseum/openaccess/master/MetObjects.csv"
USER_AGENT = "methbuild (research dataset builder; +https://github.com/)"
CHUNK = 1 << 20



def download_met_csv(url: str | None, out: str | os.PathLike, *, progress: bool = True,
                     timeout: float = 60.0) -> Path:
    """Download the MetObjects CSV from ``url`` (None: the Met's openaccess media URL) to ``out``."""
    url = url or DEFAULT_CSV_URL
    out = Path(out)
    ensure_writable_dir(out.parent if str(out.parent) else Path("."), "output folder")
    clean_stale_temps(out.parent)
    try:
        resp = requests.get(url, stream=True, timeout=timeout, headers={"User-Agent": USER_AGENT})
    except requests.RequestException as exc:
        raise UserError(f"cannot download {url}: {exc}") from None
    with resp:
        if resp.status_code != 200:
            raise UserError(f"cannot download {url}: HTTP {resp.status_code}")
        expected = resp.headers.get("Content-Length")
        expected_n = int(expected) if expected and expected.isdigit() else None
        sha = hashlib.sha256()
        n = 0
        with atomic_path(out) as tmp, open(tmp, "wb") as fh, \
                tqdm(total=expected_n, unit="B", unit_scale=True, desc="MetObjects.csv", disable=True if not progress else None,
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
                    fh.write(chunk)
                    sha.update(chunk)
                    n += len(chunk)
                    bar.update(len(chunk))
            except requests.RequestException as exc:
                raise UserError(f"download of {url} broke off after {n} bytes ({exc}); rerun to retry") from None
            if first:
                raise UserError(f"{url} returned an empty body")
            if expected_n is not None and n != expected_n:
                raise UserError(f"download of {url} is incomplete: {n} of {expected_n} bytes; rerun to retry")
            fh.flush()
    return out
