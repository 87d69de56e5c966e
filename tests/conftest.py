"""Shared test helpers: run the real `methbuild` command line in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# The real Met rows (MetObjects sample and API records) ship inside the package for the demo; tests
# read them there, so a clone runs its tests without ../shared.
MET_DATA = REPO / "methbuild" / "data"


def run_cli(*args: str, cwd: str | os.PathLike | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m methbuild ARGS`` as a user would; returns the completed process (text)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "methbuild", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """A user error: exit 2, exactly one line on stderr, no traceback, mentioning ``needles``."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 1 MiB tmpfs under tmp_path, for full-disk tests (root only: skipped where mounting a tmpfs is
    not permitted); :func:`resize_disk` grows it to play "space was freed"."""
    import shutil

    mnt = tmp_path / "disk"
    mnt.mkdir()
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


def resize_disk(mnt: Path, size: str) -> Path:
    """Grow (or shrink) the tmpfs of :func:`small_disk` to ``size`` (e.g. ``"64m"``)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True)
    return mnt


def png_header(path: Path, w: int, h: int) -> Path:
    """A PNG of a few dozen bytes whose header declares w × h RGB pixels (a pixel bomb when large)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path
