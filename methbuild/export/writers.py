"""One writer per format, all with the same small surface: ``write(sample)``, ``close()``, ``abort()``.

A writer makes one file (a shard) under a temporary name beside its final name and renames it on
``close()`` (:func:`methbuild.io.atomic.atomic_path`), so a final name only ever holds a complete
shard. The image bytes pass through untouched: the tar writer copies them from the source file with
``copy_file_range`` (no trip through Python for the data), the Parquet writer embeds them as they are.

Every byte of a shard is a function of its samples: tar headers carry a fixed mtime, uid/gid 0 and
empty user/group names; Parquet files carry no timestamp.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tarfile
from pathlib import Path

from methbuild.export.plan import TAR_BLOCK, Sample
from methbuild.io.atomic import atomic_path

TAR_RECORD = 20 * TAR_BLOCK  # tar's default blocking factor: the archive is padded to a multiple of it
TAR_MTIME = 0
COPY_CHUNK = 8 << 20


class SourceChanged(Exception):
    """An image file changed between planning and writing (the rerun plans again)."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def copy_exact(src_path: str, dst_fd: int, size: int) -> None:
    """Append exactly ``size`` bytes of ``src_path`` to ``dst_fd`` (kernel-side when it can)."""
    with open(src_path, "rb", buffering=0) as src:
        if os.fstat(src.fileno()).st_size != size:
            raise SourceChanged(f"{src_path} changed size since the export was planned; rerun")
        left = size
        fast = hasattr(os, "copy_file_range")
        while left:
            if fast:
                try:
                    n = os.copy_file_range(src.fileno(), dst_fd, min(left, 1 << 30))
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                        raise
                    fast = False
                    continue
            else:
                chunk = src.read(min(left, COPY_CHUNK))
                n = len(chunk)
                _write_all(dst_fd, chunk)
            if n == 0:
                raise SourceChanged(f"{src_path} became shorter while it was exported; rerun")
            left -= n


def drop_from_cache(fd: int) -> None:
    """Drop a sealed shard's clean pages from the page cache: it is written once and read elsewhere later."""
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass


class _AtomicFile:
    """The temporary file of one shard: renamed to its final name on commit, removed on abort.

    No fsync here: the run seals each shard (fsync, then its done record) in a thread while the next
    shard is copied, so the disk writes one shard while the next is made (see methbuild.export.run).
    """

    def __init__(self, final: Path):
        final.parent.mkdir(parents=True, exist_ok=True)
        self._stack = contextlib.ExitStack()
        self.tmp = self._stack.enter_context(atomic_path(final, fsync=False))

    def commit(self) -> None:
        self._stack.close()

    def abort(self, exc: BaseException | None = None) -> None:
        self._stack.__exit__(type(exc) if exc else RuntimeError, exc or RuntimeError("aborted"), None)


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = TAR_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    # GNU format: a long name or a size over 8 GiB gets its extension header, deterministically.
    return info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict")


def sample_json(s: Sample) -> bytes:
    return json.dumps(s.fields, ensure_ascii=False, allow_nan=False).encode("utf-8")


class WebDatasetWriter:
    """A WebDataset shard: per sample ``<key>.<ext>`` (the original bytes), ``<key>.json``, ``<key>.cls``."""

    def __init__(self, final: Path, task: str):
        self.final = final
        self.task = task
        self._file = _AtomicFile(final)
        # No O_TRUNC: the temp file is new and empty, and ext4 flushes a truncated file on close (auto_da_alloc).
        self._fd = os.open(self._file.tmp, os.O_WRONLY)
        self._pos = 0
        self.rows: list[dict] = []

    def _member(self, name: str, size: int, data: bytes | None = None, path: str | None = None) -> int:
        header = _tar_header(name, size)
        _write_all(self._fd, header)
        offset = self._pos + len(header)
        if data is not None:
            _write_all(self._fd, data)
        else:
            copy_exact(path, self._fd, size)
        pad = -size % TAR_BLOCK
        if pad:
            _write_all(self._fd, b"\0" * pad)
        self._pos = offset + size + pad
        return offset

    def write(self, s: Sample) -> None:
        offset = self._member(f"{s.key}.{s.ext}", s.size, path=s.path)
        meta = sample_json(s)
        self._member(f"{s.key}.json", len(meta), data=meta)
        if self.task == "classification":
            cls = str(s.label_value).encode()
            self._member(f"{s.key}.cls", len(cls), data=cls)
        self.rows.append({"shard": self.final.name, "key": s.key, "member": f"{s.key}.{s.ext}", "offset": offset,
                          "length": s.size, "width": s.width, "height": s.height, "label": s.label,
                          "cls": s.label_value if self.task == "classification" else None, "split": s.split,
                          "bucket": s.bucket})

    def close(self) -> None:
        end = self._pos + 2 * TAR_BLOCK
        end += -end % TAR_RECORD
        _write_all(self._fd, b"\0" * (end - self._pos))
        self._pos = end
        os.close(self._fd)
        self._file.commit()

    def abort(self, exc: BaseException | None = None) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._file.abort(exc)


def hf_features(columns, task: str, classes) -> dict:
    """The ``datasets`` Features of a Parquet export (stored in the schema's ``huggingface`` metadata)."""
    dtype = {"int": "int64", "float": "float64", "str": "string"}
    feats: dict = {"image": {"_type": "Image"}}
    if task == "classification":
        feats["label"] = {"names": list(classes), "_type": "ClassLabel"}
    elif task == "regression":
        feats["label"] = {"dtype": "int64", "_type": "Value"}
    for col, kind in columns:
        feats[col] = {"dtype": dtype[kind], "_type": "Value"}
    return {"info": {"features": feats}}


def parquet_schema(columns, task: str, classes):
    import pyarrow as pa

    arrow = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
    fields = [pa.field("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())]))]
    if task in ("classification", "regression"):
        fields.append(pa.field("label", pa.int64()))
    fields += [pa.field(col, arrow[kind]) for col, kind in columns]
    meta = {b"huggingface": json.dumps(hf_features(columns, task, classes)).encode()}
    return pa.schema(fields, metadata=meta)


class ParquetWriter:
    """A Parquet shard in the Hugging Face layout: ``image`` {bytes, path}, ``label``, every CSV column.

    Holds at most one row group of images in memory (``row_group_bytes``, ~100 MB).
    """

    def __init__(self, final: Path, columns, task: str, classes, row_group_bytes: int):
        import pyarrow.parquet as pq

        self.final = final
        self.columns = list(columns)
        self.task = task
        self.schema = parquet_schema(self.columns, task, classes)
        self.row_group_bytes = row_group_bytes
        self._file = _AtomicFile(final)
        small = [f.name for f in self.schema if f.name != "image"] + ["image.path"]
        # Images are already compressed and unique: no compression, dictionary or min/max statistics for them.
        # write_batch_size=1: the encoder takes one value at a time, so it holds one image, not a batch of
        # 1024 (measured: 184 MB peak instead of 418 MB for a 139 MB row group).
        self._writer = pq.ParquetWriter(self._file.tmp, self.schema, compression="none", use_dictionary=small,
                                        write_statistics=small, store_schema=True, write_batch_size=1)
        self._buf: list[Sample] = []
        self._buf_bytes = 0
        self.rows: list[dict] = []

    def write(self, s: Sample) -> None:
        self._buf.append(s)
        self._buf_bytes += s.size
        self.rows.append({"shard": self.final.as_posix(), "key": s.key, "split": s.split})
        if self._buf_bytes >= self.row_group_bytes:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if not self._buf:
            return
        samples = self._buf
        self._buf, self._buf_bytes = [], 0
        # Each image is a zero-copy slice of its memory-mapped file, one chunk per image: the Parquet
        # encoder copies it once into its page. Reading the row group into one Arrow buffer first was
        # 3× slower (55 vs 180 MB/s in the same run), the extra copy and fresh pages costing more than
        # the mapping.
        image_type = self.schema.field("image").type
        maps, chunks = [], []
        try:
            for s in samples:
                mm = pa.memory_map(s.path)
                maps.append(mm)
                if mm.size() != s.size:
                    raise SourceChanged(f"{s.path} changed size since the export was planned; rerun")
                if s.size >= 2**31:
                    raise ValueError(f"{s.path}: an image of 2 GiB or more does not fit a Parquet binary value")
                blob = pa.BinaryArray.from_buffers(pa.binary(), 1, [None, pa.array([0, s.size], type=pa.int32())
                                                                    .buffers()[1], mm.read_buffer(s.size)])
                chunks.append(pa.StructArray.from_arrays([blob, pa.array([s.file_name], type=pa.string())],
                                                         fields=list(image_type)))
            cols: dict = {"image": pa.chunked_array(chunks, type=image_type)}
            if "label" in self.schema.names:
                cols["label"] = pa.array([s.label_value for s in samples], type=pa.int64())
            for col, _ in self.columns:
                cols[col] = pa.array([s.fields.get(col) for s in samples], type=self.schema.field(col).type)
            table = pa.table(cols, schema=self.schema)
            self._writer.write_table(table, row_group_size=table.num_rows)
            del table, cols, chunks
        finally:
            for mm in maps:
                mm.close()

    def close(self) -> None:
        self._flush()
        self._writer.close()
        self._file.commit()

    def abort(self, exc: BaseException | None = None) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        self._file.abort(exc)


class ImageFolderWriter:
    """``<split>/<file>``: a hard link to the original (a copy across file systems), made under a temp name."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        self.linked = 0

    def write(self, s: Sample) -> None:
        final = self.folder / s.file_name
        try:
            st = os.stat(final)
            src = os.stat(s.path)
            if (st.st_dev, st.st_ino) == (src.st_dev, src.st_ino) or (
                    st.st_size == s.size and st.st_mtime_ns == src.st_mtime_ns):
                self.rows.append({"file_name": s.file_name, "key": s.key, "split": s.split})
                return
        except FileNotFoundError:
            pass
        with atomic_path(final, fsync=False) as tmp:
            os.unlink(tmp)
            try:
                os.link(s.path, tmp)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                shutil.copy2(s.path, tmp)  # copy2 keeps the mtime, which the rerun check above compares
        self.linked += 1
        self.rows.append({"file_name": s.file_name, "key": s.key, "split": s.split})

    def close(self) -> None:
        pass

    def abort(self, exc: BaseException | None = None) -> None:
        pass
