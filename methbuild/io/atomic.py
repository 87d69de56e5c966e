"""Atomic writes: a file appears under its final name complete, or not at all.

Data goes to a temporary name in the same folder (same filesystem, so the rename is atomic),
is flushed and fsynced, then renamed over the final name. A killed process leaves at most a
``.<name>.tmp-*`` file behind, which :func:`clean_stale_temps` removes on the next run.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from methbuild.errors import UserError

TMP_MARK = ".tmp-"


def _default_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give: 0o666 less the process umask."""
    old = os.umask(0)
    os.umask(old)
    return 0o666 & ~old


_FILE_MODE = _default_mode()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success it is renamed to ``final``.

    The caller writes the temporary path by any means (a library's ``save(path)``);
    on an exception the temporary file is removed and ``final`` is untouched.
    """
    final = Path(final)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}{TMP_MARK}", dir=final.parent)
    os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600 files; outputs are meant to be shared like any other file
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if fsync:
        _fsync_dir(final.parent)


def atomic_write_bytes(final: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``final`` atomically."""
    with atomic_path(final, fsync=fsync) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def atomic_write_text(final: str | os.PathLike, text: str, *, fsync: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``final`` atomically."""
    atomic_write_bytes(final, text.encode("utf-8"), fsync=fsync)


def clean_stale_temps(folder: str | os.PathLike) -> int:
    """Remove temporary files an interrupted run left in ``folder``; return how many."""
    n = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if entry.name.startswith(".") and TMP_MARK in entry.name and entry.is_file():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    n += 1
    return n


def ensure_writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``path`` if needed and check it can be written; a :class:`UserError` if not."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {str(path)!r} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"cannot write to {what} {str(path)!r}: {exc.strerror or exc}") from None
    return path
