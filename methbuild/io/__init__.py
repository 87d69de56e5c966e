"""Every on-disk format methbuild writes: atomic files, tables (CSV + Parquet), checksums."""

from methbuild.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text, ensure_writable_dir
from methbuild.io.tables import write_table

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "ensure_writable_dir", "write_table"]
