"""The crawler's resume state: one SQLite file, ``DIR/crawl.sqlite``, written by one process.

WAL mode, one short transaction per state change: a process killed at any moment (SIGKILL
included) leaves the database at its last commit. An image is renamed to its final name
*before* its row says ``downloaded``; a rerun that finds the file of an unfinished row adopts
it only when its length is the one the server announced for it (recorded in ``announced`` before
the body is read), so a truncated or foreign file under a final name is fetched again.

The state is checked, not trusted, when a run starts (:meth:`CrawlState.verify`) and when a
record is read back: a stored record that is not JSON, not an object, not this object's or
not of the shape the crawler uses is dropped and fetched again; a ``downloaded`` row whose file
is missing or of another length is redone. A full disk surfaces as ``OSError(ENOSPC)``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from methbuild.errors import UserError

if TYPE_CHECKING:  # pandas is imported only to export (it costs ~80 MB of RSS)
    import pandas as pd

# Final outcomes: never fetched again.
DOWNLOADED = "downloaded"
NOT_FOUND = "not_found"  # the API (or the image host) answered 404
NOT_PUBLIC_DOMAIN = "not_public_domain"
NO_IMAGE = "no_image"  # public domain, but primaryImage is empty
REFUSED = "refused"  # foreign host (re-evaluated every run), redirect elsewhere, pixel or byte limit
BAD_RECORD = "bad_record"  # the API's record is malformed (types, size, nesting): never guessed at
FINAL = (DOWNLOADED, NOT_FOUND, NOT_PUBLIC_DOMAIN, NO_IMAGE, REFUSED, BAD_RECORD)
# Not final: picked up by the next run.
PENDING = "pending"
FAILED = "failed"  # transient failures outlasted the retries of one run
STATUSES = FINAL + (PENDING, FAILED)

EXPORT_COLUMNS = ["object_id", "status", "image_file", "width", "height", "bytes", "sha256", "url", "error"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    object_id    INTEGER PRIMARY KEY,
    status       TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    record       TEXT,
    url          TEXT,
    image_file   TEXT,
    bytes        INTEGER,
    sha256       TEXT,
    width        INTEGER,
    height       INTEGER,
    content_type TEXT,
    updated      REAL,
    refused_host TEXT,
    announced    INTEGER
);
CREATE INDEX IF NOT EXISTS objects_status ON objects(status);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""

# refused_host: the host an image refusal was about (NULL for other refusals);
# announced: the Content-Length of the last image response whose body was read (NULL: none announced).
_ADDED_COLUMNS = (("refused_host", "TEXT"), ("announced", "INTEGER"))


@contextlib.contextmanager
def disk_full_as_oserror(path: Path) -> Iterator[None]:
    """SQLite says "database or disk is full" with its own exception; make it the ``OSError(ENOSPC)``
    every other write raises, so the command reports one line for both."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        msg = str(exc).lower()
        # With not one block left, SQLite may fail to grow its WAL index or journal before it can say "full":
        # it says "disk I/O error". That is a full disk too when the file system reports no free block.
        if "full" in msg or ("disk i/o error" in msg and _no_free_block(path)):
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from None
        raise


def _no_free_block(path: str | Path) -> bool:
    try:
        st = os.statvfs(Path(path).parent)
    except OSError:
        return False
    return st.f_bavail == 0 or st.f_favail == 0


class CrawlState:
    """Read and update ``crawl.sqlite``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with disk_full_as_oserror(self.path):
                self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.executescript(_SCHEMA)
                columns = {r[1] for r in self.db.execute("PRAGMA table_info(objects)")}
                for name, kind in _ADDED_COLUMNS:  # a state written by an earlier version
                    if name not in columns:
                        self.db.execute(f"ALTER TABLE objects ADD COLUMN {name} {kind}")
        except sqlite3.DatabaseError as exc:
            if "disk i/o error" in str(exc).lower() and _no_free_block(self.path):
                raise OSError(errno.ENOSPC, "No space left on device", str(self.path)) from None
            raise UserError(f"{str(self.path)!r} is not a crawl state database ({exc})") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> CrawlState:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reads
    def get(self, object_id: int) -> sqlite3.Row | None:
        self.db.row_factory = sqlite3.Row
        try:
            return self.db.execute("SELECT * FROM objects WHERE object_id=?", (object_id,)).fetchone()
        finally:
            self.db.row_factory = None

    def unfinished(self) -> list[int]:
        q = f"SELECT object_id FROM objects WHERE status NOT IN ({','.join('?' * len(FINAL))}) ORDER BY rowid"
        return [r[0] for r in self.db.execute(q, FINAL)]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUSES}
        for status, n in self.db.execute("SELECT status, COUNT(*) FROM objects GROUP BY status"):
            out[status] = n
        return out

    def record(self, object_id: int, check: Callable[[object, int], str | None] | None = None) -> dict | None:
        """The stored record, or None when there is none or it is damaged (it is then fetched again).

        ``check(record, object_id)`` returns what is wrong with a decoded record (None: nothing).
        """
        row = self.db.execute("SELECT record FROM objects WHERE object_id=?", (object_id,)).fetchone()
        if not row or row[0] is None:
            return None
        rec = decode_record(row[0], object_id, check)
        if rec is None:  # tampered or damaged: forget it, so this object is redone from its record
            self._write("UPDATE objects SET record=NULL WHERE object_id=?", (object_id,))
        return rec

    # -- writes (each one a committed transaction)
    def add_ids(self, ids: Iterable[int]) -> int:
        """Register object IDs (already known ones are left as they are); return how many were new."""
        before = self.db.total_changes
        with disk_full_as_oserror(self.path), self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR IGNORE INTO objects(object_id, updated) VALUES (?, ?)",
                                ((int(i), time.time()) for i in ids))
        return self.db.total_changes - before

    def save_record(self, object_id: int, record: dict) -> None:
        self._write("UPDATE objects SET record=?, updated=? WHERE object_id=?",
                        (json.dumps(record, ensure_ascii=False, separators=(",", ":")), time.time(), object_id))

    def finish(self, object_id: int, status: str, *, error: str | None = None, url: str | None = None,
               image_file: str | None = None, nbytes: int | None = None, sha256: str | None = None,
               width: int | None = None, height: int | None = None, content_type: str | None = None,
               refused_host: str | None = None) -> None:
        self._write(
            "UPDATE objects SET status=?, error=?, url=COALESCE(?, url), image_file=?, bytes=?, sha256=?, "
            "width=?, height=?, content_type=?, refused_host=?, updated=? WHERE object_id=?",
            (status, error, url, image_file, nbytes, sha256, width, height, content_type, refused_host, time.time(),
             object_id))

    def note_announced(self, object_id: int, nbytes: int | None) -> None:
        """The length the image host announced for the body about to be read (None: none announced).

        A file found later under the object's final name is adopted only if it has this length."""
        self._write("UPDATE objects SET announced=? WHERE object_id=?", (nbytes, object_id))

    def announced(self, object_id: int) -> int | None:
        row = self.db.execute("SELECT announced FROM objects WHERE object_id=?", (object_id,)).fetchone()
        return row[0] if row and type(row[0]) is int else None

    def note_attempt(self, object_id: int, error: str | None, *, status: str | None = None,
                     url: str | None = None) -> None:
        self._write("UPDATE objects SET attempts=attempts+1, error=?, status=COALESCE(?, status), "
                        "url=COALESCE(?, url), updated=? WHERE object_id=?",
                        (error, status, url, time.time(), object_id))

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def _write(self, sql: str, params: tuple) -> None:
        with disk_full_as_oserror(self.path):
            self.db.execute(sql, params)

    # -- checks when a run starts
    def reopen_refusals(self, allowed_hosts: Iterable[str]) -> int:
        """Objects refused because of their image host go back to pending when that host is allowed
        now (``--allow-host``); return how many. Refusals recorded before the host was kept are
        re-evaluated once."""
        hosts = sorted({h.lower() for h in allowed_hosts})
        before = self.db.total_changes
        with disk_full_as_oserror(self.path):
            self.db.execute(
                f"UPDATE objects SET status='{PENDING}', error=NULL WHERE status='{REFUSED}' AND "
                f"(refused_host IN ({','.join('?' * len(hosts))}) OR (refused_host IS NULL AND "
                "(error LIKE '%is not allowed%' OR error LIKE '%redirect to foreign host%')))", hosts)
        return self.db.total_changes - before

    def verify(self, out: Path) -> int:
        """Redo every ``downloaded`` row whose file is missing or not of the recorded length, and every
        row whose status is not one of ours; return how many rows were reset."""
        bad: list[int] = []
        for oid, image_file, nbytes in self.db.execute(
                f"SELECT object_id, image_file, bytes FROM objects WHERE status='{DOWNLOADED}'"):
            try:
                ok = (isinstance(image_file, str) and image_file.startswith("images/") and "/" not in image_file[7:]
                      and isinstance(nbytes, int) and os.stat(out / image_file).st_size == nbytes)
            except (OSError, ValueError):
                ok = False
            if not ok:
                bad.append(oid)
        with disk_full_as_oserror(self.path):
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany(f"UPDATE objects SET status='{PENDING}', image_file=NULL, sha256=NULL, "
                                    "bytes=NULL WHERE object_id=?", ((i,) for i in bad))
                cur = self.db.execute(
                    f"UPDATE objects SET status='{PENDING}' WHERE status NOT IN ({','.join('?' * len(STATUSES))})",
                    STATUSES)
        return len(bad) + cur.rowcount

    # -- exports
    def objects_frame(self) -> pd.DataFrame:
        import pandas as pd

        df = pd.read_sql_query(
            "SELECT object_id, status, image_file, width, height, bytes, sha256, url, error FROM objects "
            "ORDER BY object_id", self.db)
        for col in ("width", "height", "bytes"):
            df[col] = df[col].astype("Int64")
        for col in ("status", "image_file", "sha256", "url", "error"):
            df[col] = df[col].astype("string")
        return df[EXPORT_COLUMNS]

    def records(self, check: Callable[[object, int], str | None] | None = None) -> dict[int, dict]:
        """Every stored record that decodes to this object's JSON object (a damaged one is left out)."""
        out = {}
        for oid, text in self.db.execute(
                "SELECT object_id, record FROM objects WHERE record IS NOT NULL ORDER BY object_id"):
            rec = decode_record(text, oid, check)
            if rec is not None:
                out[oid] = rec
        return out


def decode_record(text: object, object_id: int, check: Callable[[object, int], str | None] | None = None
                  ) -> dict | None:
    """A stored record, decoded and checked; None when it is not this object's well-formed record."""
    if not isinstance(text, (str, bytes)):
        return None
    try:
        rec = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser's recursion
        return None
    if not isinstance(rec, dict) or rec.get("objectID") != object_id or type(rec.get("objectID")) is not int:
        return None
    if check is not None and check(rec, object_id) is not None:
        return None
    return rec
