"""The arguments an output folder was made with, kept beside it so a rerun resumes only the same set.

A generator that resumes in a folder (UltraMNIST, Megapixel MNIST) writes its identity (the arguments
that decide its bytes) to a small JSON marker. A rerun with other arguments is refused with the
differences listed, instead of mixing two sets in one folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from methbuild.errors import UserError
from methbuild.io.atomic import atomic_write_text


def check_run_marker(marker: Path, ident: dict, what: str) -> None:
    """Refuse a folder whose ``marker`` records other arguments than ``ident``; then record ``ident``.

    ``what`` names the set in the message (``"an UltraMNIST set"``). An unreadable marker is replaced.
    """
    if marker.exists():
        try:
            old = json.loads(marker.read_text())
        except (OSError, ValueError):
            old = None
        if old is not None and old != ident:
            diff = ", ".join(f"{k} {old.get(k)!r} -> {v!r}" for k, v in ident.items() if old.get(k) != v)
            raise UserError(f"{str(marker.parent)!r} holds {what} made with other arguments ({diff}); "
                            "use another --out or remove it")
    atomic_write_text(marker, json.dumps(ident, indent=2) + "\n")
