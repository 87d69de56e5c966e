"""One run per output folder: an exclusive, advisory lock on ``<folder>/.methbuild.lock``.

Every command that resumes in a folder (crawl, build, lowres, stats, downsample, ultramnist, export)
takes this lock before it touches the folder's state. A second run on the same folder does not wait:
it fails at once with a :class:`UserError` that names the process holding the lock. The lock is
``fcntl.flock`` on an open file, so the kernel releases it when the holder exits or is killed (a stale
lock file left by a SIGKILL never blocks the next run).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from methbuild.errors import UserError

LOCK_NAME = ".methbuild.lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info.get("since", 0))))
        return f"pid {int(info['pid'])} on {info.get('host', '?')} ({info.get('command', '?')}, since {since})"
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        return "another process"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, command: str | None = None) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (created if missing) for the duration of the block.

    Raises :class:`UserError` (exit 2) at once when another run holds it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UserError(
                    f"{str(folder)!r} is in use by {_holder(path)}; wait for that run to end or stop it, "
                    "then rerun") from None
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "command": command or " ".join(["methbuild", *sys.argv[1:]])[:300], "since": time.time()}
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode("utf-8", "backslashreplace"), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock
