"""`methbuild report`: one static page per dataset — data first, page last.

- :func:`methbuild.report.data.report_data` builds a plain dict of everything the page shows
  (counts, tables, plot and thumbnail paths); the tests check it.
- :func:`methbuild.report.page.render` turns that dict into ``index.html`` (one template).
- :func:`build_report` does both into a temporary folder beside the output and renames it into
  place, so ``DIR/`` is always a complete report or the previous one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from methbuild.errors import UserError

DEFAULT_DIRNAME = "report"


@dataclass
class ReportResult:
    index: Path
    data: dict
    bytes: int
    files: int


def default_out(src: str | os.PathLike) -> Path:
    p = Path(src)
    if p.is_file():
        p = p.parent
    return p / DEFAULT_DIRNAME


def build_report(src: str | os.PathLike, out: str | os.PathLike | None = None, *, against=(), plan=None,
                 per_class: int = 8, seed: int = 0, crawl=None, progress: bool = True,
                 workers: int | None = None) -> ReportResult:
    """Write ``out/index.html`` and ``out/assets/`` for SRC (atomically: built aside, then renamed)."""
    from methbuild.io.lock import folder_lock
    from methbuild.report.data import report_data
    from methbuild.report.page import render
    from methbuild.report.sources import open_source

    if per_class < 1:
        raise UserError("--per-class must be at least 1")
    missing = [m for m in ("matplotlib", "pyvips") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"methbuild report needs {' and '.join(missing)}: pip install 'methbuild[plot,vips]'")
    source = open_source(src)  # a bad SRC or --against fails here, before any folder is made
    others = [open_source(a) for a in against]
    final = Path(out) if out is not None else default_out(src)
    if final.exists() and not final.is_dir():
        raise UserError(f"--out {str(final)!r} exists and is not a folder")
    resolved, src_dir = final.resolve(), source.folder.resolve()
    if resolved == src_dir or resolved in src_dir.parents:
        raise UserError(f"--out {str(final)!r} would replace the dataset itself; give a folder of its own")
    if resolved.is_dir() and any(resolved.iterdir()) and not (resolved / "report.json").is_file():
        # the folder is replaced as a whole: never an unrelated one
        raise UserError(f"--out {str(final)!r} exists and is not a methbuild report; choose another folder or "
                        "remove it")
    parent = final.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {str(parent)!r}: {exc.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise UserError(f"cannot write into {str(parent)!r}")
    with folder_lock(parent, "report"):
        tmp = parent / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        for stale in [*parent.glob(f".{final.name}.tmp-*"), *parent.glob(f".{final.name}.old-*")]:
            # left by an interrupted run (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
        try:
            data = report_data(source, tmp, final_out=final.resolve(), against=others, plan=plan, per_class=per_class,
                               seed=seed, crawl=crawl, progress=progress, workers=workers)
            (tmp / "index.html").write_text(render(data), encoding="utf-8")
            (tmp / "report.json").write_text(json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n",
                                             encoding="utf-8")
            _fsync_tree(tmp)
            _replace_dir(tmp, final.resolve())
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    files = [p for p in final.rglob("*") if p.is_file()]
    return ReportResult(final / "index.html", data, sum(p.stat().st_size for p in files), len(files))


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _replace_dir(tmp: Path, final: Path) -> None:
    """Put the folder ``tmp`` at ``final``; an old report there is moved aside first and removed after."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_index(reports: list[tuple[str, Path]], out: str | os.PathLike, title: str = "methbuild reports") -> Path:
    """A page linking several reports (the demo's ``index.html``); written atomically."""
    from methbuild.io.atomic import atomic_write_text
    from methbuild.report.page import e

    out = Path(out)
    base = out.parent.resolve()
    items = "".join(f'<li><a href="{e(os.path.relpath(p.resolve(), base))}">{e(name)}</a></li>' for name, p in reports)
    html = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + e(title) + "</title>"
            "<style>body{font:16px/1.5 system-ui,sans-serif;margin:40px;}a{color:#1f3a5f}</style></head><body>"
            f"<h1>{e(title)}</h1><p>One page per dataset: labels, examples, geometry, bucketing, provenance.</p>"
            f"<ul>{items}</ul></body></html>\n")
    atomic_write_text(out, html)
    return out


__all__ = ["build_report", "write_index", "ReportResult", "default_out"]
