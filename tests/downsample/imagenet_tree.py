"""A tiny ImageNet-like source tree made in code, with the real dataset's oddities."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

WNIDS = ("n01440764", "n01443537", "n02119789")  # sorted; the synsets file below orders them otherwise
# map_clsloc.txt style: 'wnid index name', index order differing from the sorted order
MAP_CLSLOC = "n02119789 1 kit_fox\nn01443537 2 goldfish\nn01440764 3 tench\n"


def photo(rng: np.random.Generator, w: int = 500, h: int = 375) -> np.ndarray:
    """A smooth, textured RGB picture with a few hard edges: compresses like a photo."""
    img = np.zeros((h, w, 3), np.float32)
    for cells, amp in ((3, 70.0), (9, 35.0), (40, 12.0)):
        field = rng.normal(0, 1, (cells, cells + 1, 3)).astype(np.float32)
        img += amp * cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(3):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        img[y0:y0 + int(rng.integers(20, 150)), x0:x0 + int(rng.integers(20, 150))] += rng.normal(0, 60, 3)
    img += 128 + rng.normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_tree(root: Path, n_train: int = 6, n_val: int = 2, seed: int = 0, oddities: bool = True,
              size: tuple[int, int] = (500, 375)) -> dict:
    """Write root/train/<wnid>/*.JPEG and root/val/<wnid>/*.JPEG; return what was written.

    With ``oddities``: a CMYK JPEG and a greyscale JPEG in train, a PNG named .JPEG in train and
    in val, and a truncated JPEG in train (the only file that must be skipped).
    """
    rng = np.random.default_rng(seed)
    w, h = size
    files: dict[str, list[tuple[str, str]]] = {"train": [], "val": []}  # (relative path, wnid)
    val_no = 0
    for wnid in WNIDS:
        for split, n in (("train", n_train), ("val", n_val)):
            d = root / split / wnid
            d.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                if split == "train":
                    name = f"{wnid}_{k + 1}.JPEG"
                else:
                    val_no += 1
                    name = f"ILSVRC2012_val_{val_no:08d}.JPEG"
                Image.fromarray(photo(rng, w, h)).save(d / name, "JPEG", quality=90)
                files[split].append((f"{split}/{wnid}/{name}", wnid))
    truncated = None
    if oddities:
        wnid = WNIDS[1]
        d = root / "train" / wnid
        Image.fromarray(photo(rng, w, h)).convert("CMYK").save(d / f"{wnid}_cmyk.JPEG", "JPEG", quality=90)
        Image.fromarray(photo(rng, w, h)).convert("L").save(d / f"{wnid}_grey.JPEG", "JPEG", quality=90)
        Image.fromarray(photo(rng, 400, 300)).save(d / f"{wnid}_png.JPEG", "PNG")  # a PNG named .JPEG
        for name in ("cmyk", "grey", "png"):
            files["train"].append((f"train/{wnid}/{wnid}_{name}.JPEG", wnid))
        val_no += 1
        vname = f"ILSVRC2012_val_{val_no:08d}.JPEG"
        Image.fromarray(photo(rng, 300, 400)).save(root / "val" / WNIDS[0] / vname, "PNG")
        files["val"].append((f"val/{WNIDS[0]}/{vname}", WNIDS[0]))
        full = root / "train" / wnid / f"{wnid}_full.tmp"
        Image.fromarray(photo(rng, w, h)).save(full, "JPEG", quality=90)
        data = full.read_bytes()
        full.unlink()
        truncated = f"train/{wnid}/{wnid}_truncated.JPEG"
        (root / truncated).write_bytes(data[: len(data) // 2])
    (root / ".hidden-note").write_text("ignored")  # stray files outside class folders are ignored
    return {"files": files, "truncated": truncated}
