"""Small export sources made in code: a MetH dataset, an UltraMNIST folder, a crawl folder."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

METH_COLUMNS = ["ID", "Label", "Image file", "Width", "Height", "Product size", "Aspect ratio", "Split",
                "Accession number", "URL", "sha256"]


def image_bytes(w: int, h: int, seed: int, fmt: str = "JPEG", mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    im = Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode)
    buf = io.BytesIO()
    im.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_meth(root: Path, name: str = "MetH-Test", labels=None, *, old_form_every: int = 4,
              png_ids=(), splits=None) -> Path:
    """``root/<name>/<name>.csv`` + ``data/``; returns the dataset folder.

    ``labels``: one label per image (text classes by default). Every ``old_form_every``-th row uses the
    pre-0.2 ``data/<id>.jpg`` form. ``png_ids``: images stored as PNG under a ``.jpg`` name.
    """
    labels = labels if labels is not None else ["Silver", "Gold", "Bronze", "Silk", "Gold", "Wood", "Silver",
                                                "Bronze", "Gold", "Silk", "Wood", "Gold"]
    n = len(labels)
    splits = splits or (["train"] * (n - 4) + ["validation"] * 2 + ["test"] * 2)
    folder = root / name
    (folder / "data").mkdir(parents=True)
    rows = []
    for i, (label, split) in enumerate(zip(labels, splits)):
        oid = 1000 + 37 * ((i * 7) % n)  # not in sorted order in the CSV
        w, h = 24 + 5 * i, 40 - i
        fmt = "PNG" if oid in png_ids else "JPEG"
        data = image_bytes(w, h, seed=oid, fmt=fmt)
        (folder / "data" / f"{oid}.jpg").write_bytes(data)
        value = f"data/{oid}.jpg" if old_form_every and i % old_form_every == 0 else f"{oid}.jpg"
        rows.append([oid, label, value, w, h, w * h, round(w / h, 6), split, f"19{i:02d}.1.{i}",
                     f"http://127.0.0.1/{oid}.jpg", sha(data)])
    with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
        wr = csv.writer(fh, lineterminator="\n")
        wr.writerow(METH_COLUMNS)
        wr.writerows(rows)
    return folder


def make_ultramnist(root: Path, n: int = 6) -> Path:
    folder = root / "ultramnist"
    for split, base in (("train", "a"), ("test", "b")):
        (folder / split).mkdir(parents=True)
        lines = ["id,digit_sum"]
        for i in range(n):
            key = f"{base}{chr(ord('a') + i)}xq"
            (folder / split / f"{key}.jpeg").write_bytes(image_bytes(32 + i, 32, seed=i + (100 if base == "b" else 0),
                                                                     mode="L"))
            lines.append(f"{key},{(i * 11) % 28}")
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return folder


def make_crawl(root: Path) -> Path:
    folder = root / "crawl"
    (folder / "images").mkdir(parents=True)
    lines = ["object_id,status,image_file,width,height,bytes,sha256,url,error"]
    for i, oid in enumerate([501, 77, 3000, 42]):
        if oid == 3000:
            lines.append(f"{oid},failed,,,,,,http://127.0.0.1/{oid}.jpg,HTTP 404")
            continue
        data = image_bytes(20 + i, 30, seed=oid, fmt="PNG" if oid == 42 else "JPEG")
        ext = "png" if oid == 42 else "jpg"
        (folder / "images" / f"{oid}.{ext}").write_bytes(data)
        lines.append(f"{oid},downloaded,images/{oid}.{ext},{20 + i},30,{len(data)},{sha(data)},"
                     f"http://127.0.0.1/{oid}.jpg,")
    (folder / "objects.csv").write_text("\n".join(lines) + "\n")
    return folder
