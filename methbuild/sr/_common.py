"""What the SR commands share: the run report, the failures exception, source listing and folder names."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from methbuild.errors import UserError

GT_DIR = "GT"
LR_PREFIX = "LRbicx"  # LRbicx2, LRbicx4, ...: the DIV2K / BasicSR naming of bicubic LR folders
LR_DIR = re.compile(r"^LR([a-z0-9]*?)x(\d+)$")  # LRbicx4 (pairs), LRrealesrganx4 (degrade): kind, scale
META_INFO = "meta_info.txt"


@dataclass
class SrReport:
    """What a run did: counts, the failures (item, reason), the table it wrote and the time."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    table: Path | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.done + self.skipped + self.failed


class SrFailures(Exception):
    """Raised with ``strict=True`` when items failed (after everything else was written)."""

    def __init__(self, report: SrReport):
        super().__init__(f"{report.failed} of {report.total} image(s) failed")
        self.report = report


def short_reason(error: str | None) -> str:
    """A task's error text without the type names of our own expected errors."""
    reason = error or "unknown error"
    for expected in ("ValueError: ", "FileNotFoundError: ", "OSError: "):
        reason = reason.removeprefix(expected)
    return reason


def png_files(folder: str | os.PathLike) -> list[Path]:
    """The ``.png`` files of ``folder`` (any case), sorted by name, hidden and temporary files left out."""
    folder = Path(folder)
    return sorted((p for p in folder.iterdir()
                   if p.suffix.lower() == ".png" and not p.name.startswith(".") and p.is_file()),
                  key=lambda p: p.name)


def pair_folders(root: str | os.PathLike) -> tuple[Path, list[tuple[int, Path]]]:
    """(GT folder, [(scale, LR folder)]) of a paired layout written by ``sr pairs`` (``LRbicx<s>``) or
    ``sr degrade`` (``LR<preset>x<s>``); a UserError if ``root`` is not one."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{str(root)!r} is not a folder")
    gt = root / GT_DIR
    lrs = [(int(m.group(2)), p) for p in sorted(root.iterdir())
           if p.is_dir() and (m := LR_DIR.match(p.name)) and int(m.group(2)) >= 1]
    if not gt.is_dir() or not lrs:
        raise UserError(f"{str(root)!r} is not a paired folder: expected {GT_DIR}/ and {LR_PREFIX}<s>/ "
                        "(or LR<preset>x<s>/) folders (write them with `methbuild sr pairs` or `sr degrade`)")
    return gt, lrs
