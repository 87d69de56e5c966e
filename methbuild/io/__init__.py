"""Every on-disk format methbuild writes: atomic files, tables (CSV + Parquet), checksums.

Names load lazily, so a worker process importing one small module here does not pay for pandas.
"""

from __future__ import annotations

from methbuild._lazy import lazy_getattr

_LAZY = {
    "atomic_path": "methbuild.io.atomic",
    "atomic_write_bytes": "methbuild.io.atomic",
    "atomic_write_text": "methbuild.io.atomic",
    "ensure_writable_dir": "methbuild.io.atomic",
    "write_table": "methbuild.io.tables",
}
__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr("methbuild.io", _LAZY)
