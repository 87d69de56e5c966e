"""A contact sheet of generated images with their digit boxes, for a person to look at."""

from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image, ImageDraw

from methbuild.io.atomic import atomic_path

THUMB = 360
PER_SPLIT = 8
COLUMNS = 4


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def contact_sheet(out: Path, splits: tuple[str, ...], fmt: str, dest: Path) -> Path:
    """Thumbnails of the first images of each split, digit boxes in red, the label underneath."""
    ext = ".jpeg" if fmt == "jpeg" else ".png"
    tiles: list[Image.Image] = []
    for split in splits:
        labels = _rows(out / f"{split}.csv")[:PER_SPLIT]
        boxes: dict[str, list[dict]] = {}
        for row in _rows(out / f"{split}_digits.csv"):
            boxes.setdefault(row["id"], []).append(row)
        for row in labels:
            with Image.open(out / split / (row["id"] + ext)) as im:
                size = im.size[0]
                im.draft("L", (THUMB, THUMB))  # JPEG: decode at 1/8 scale directly, fast
                thumb = im.convert("RGB").resize((THUMB, THUMB), Image.Resampling.BOX)
            draw = ImageDraw.Draw(thumb)
            k = THUMB / size
            for d in boxes.get(row["id"], []):
                x, y, s = int(d["x"]), int(d["y"]), int(d["side"])
                draw.rectangle([x * k - 1, y * k - 1, (x + s) * k + 1, (y + s) * k + 1], outline=(230, 30, 30), width=2)
            tile = Image.new("RGB", (THUMB, THUMB + 22), "white")
            tile.paste(thumb, (0, 0))
            digits = "+".join(d["digit"] for d in boxes.get(row["id"], []))
            ImageDraw.Draw(tile).text((4, THUMB + 5), f"{split}/{row['id']}  {digits} = {row['digit_sum']}", fill="black")
            tiles.append(tile)
    rows = max(1, -(-len(tiles) // COLUMNS))
    sheet = Image.new("RGB", (COLUMNS * (THUMB + 8) + 8, rows * (THUMB + 30) + 8), (235, 235, 235))
    for i, tile in enumerate(tiles):
        r, c = divmod(i, COLUMNS)
        sheet.paste(tile, (8 + c * (THUMB + 8), 8 + r * (THUMB + 30)))
    with atomic_path(dest) as tmp:
        sheet.save(tmp, "PNG")
    return dest
