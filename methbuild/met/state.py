"""The crawler's resume state: one SQLite file, ``DIR/crawl.sqlite``, written by one process.

WAL mode, one short transaction per state change: a process killed at any moment (SIGKILL
included) leaves the database at its last commit. An image is renamed to its final name
*before* its row says ``downloaded``; a rerun that finds the file of an unfinished row adopts
it (hash and header check) instead of downloading it again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
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
REFUSED = "refused"  # foreign host, redirect elsewhere, pixel or byte limit
FINAL = (DOWNLOADED, NOT_FOUND, NOT_PUBLIC_DOMAIN, NO_IMAGE, REFUSED)
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
    updated      REAL
);
CREATE INDEX IF NOT EXISTS objects_status ON objects(status);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


class CrawlState:
    """Read and update ``crawl.sqlite``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
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

    def record(self, object_id: int) -> dict | None:
        row = self.db.execute("SELECT record FROM objects WHERE object_id=?", (object_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    # -- writes (each one a committed transaction)
    def add_ids(self, ids: Iterable[int]) -> int:
        """Register object IDs (already known ones are left as they are); return how many were new."""
        before = self.db.total_changes
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR IGNORE INTO objects(object_id, updated) VALUES (?, ?)",
                                ((int(i), time.time()) for i in ids))
        return self.db.total_changes - before

    def save_record(self, object_id: int, record: dict) -> None:
        self.db.execute("UPDATE objects SET record=?, updated=? WHERE object_id=?",
                        (json.dumps(record, ensure_ascii=False, separators=(",", ":")), time.time(), object_id))

    def finish(self, object_id: int, status: str, *, error: str | None = None, url: str | None = None,
               image_file: str | None = None, nbytes: int | None = None, sha256: str | None = None,
               width: int | None = None, height: int | None = None, content_type: str | None = None) -> None:
        self.db.execute(
            "UPDATE objects SET status=?, error=?, url=COALESCE(?, url), image_file=?, bytes=?, sha256=?, "
            "width=?, height=?, content_type=?, updated=? WHERE object_id=?",
            (status, error, url, image_file, nbytes, sha256, width, height, content_type, time.time(), object_id))

    def note_attempt(self, object_id: int, error: str | None, *, status: str | None = None,
                     url: str | None = None) -> None:
        self.db.execute("UPDATE objects SET attempts=attempts+1, error=?, status=COALESCE(?, status), "
                        "url=COALESCE(?, url), updated=? WHERE object_id=?",
                        (error, status, url, time.time(), object_id))

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

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

    def records(self) -> dict[int, dict]:
        return {oid: json.loads(rec) for oid, rec in
                self.db.execute("SELECT object_id, record FROM objects WHERE record IS NOT NULL ORDER BY object_id")}
