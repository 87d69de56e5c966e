"""The ImageNet source tree and its class map: what to read, with which 1-based label.

``SRC/train/<wnid>/*`` and ``SRC/val/<wnid>/*`` (the ILSVRC-2012 layout once the validation
images are sorted into class folders). Labels follow the devkit's ``map_clsloc.txt``
(``wnid index name`` per line) when given, otherwise the sorted wnids numbered from 1.
Only listing happens here: no image is opened.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from methbuild.errors import UserError

SPLITS = ("train", "val")


@dataclass(frozen=True)
class SplitFiles:
    """The files of one split, sorted (label, then file name for train; file name for val)."""

    name: str
    paths: tuple[str, ...]  # relative to SRC, '/'-separated
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def digest(self) -> str:
        """Identity of the listing: a resumed run must see exactly the same files and labels."""
        h = hashlib.sha256()
        for p, lab in zip(self.paths, self.labels):
            # os.fsencode: a file name that is not UTF-8 (surrogate-escaped by os.scandir) hashes as its bytes
            h.update(os.fsencode(p) + f"\t{lab}\n".encode())
        return h.hexdigest()


@dataclass(frozen=True)
class Source:
    root: Path
    classes: dict[str, int]  # wnid -> 1-based label
    train: SplitFiles
    val: SplitFiles | None  # None: SRC has no val/ folder


def read_synsets(path: str | os.PathLike) -> dict[str, int]:
    """Parse a class map: ``wnid index name`` lines (``map_clsloc.txt``), or ``wnid [name]``
    lines (e.g. ``LOC_synset_mapping.txt``), whose label is then the line number."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UserError(f"cannot read synsets file {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"synsets file {str(path)!r} is not UTF-8 text") from None
    rows = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not rows:
        raise UserError(f"synsets file {str(path)!r} is empty")
    indexed = all(len(tok) >= 2 and tok[1].lstrip("-").isdigit() for _, tok in rows)
    classes: dict[str, int] = {}
    seen: dict[int, str] = {}
    for k, (lineno, tok) in enumerate(rows, 1):
        wnid = tok[0]
        label = int(tok[1]) if indexed else k
        if label < 1:
            raise UserError(f"synsets file {str(path)!r} line {lineno}: index {label} is not ≥ 1 (labels are 1-based)")
        if wnid in classes:
            raise UserError(f"synsets file {str(path)!r} line {lineno}: {wnid} listed twice")
        if label in seen:
            raise UserError(f"synsets file {str(path)!r} line {lineno}: index {label} already used by {seen[label]}")
        classes[wnid] = label
        seen[label] = wnid
    return classes


def _visible(entries: list[os.DirEntry]) -> list[os.DirEntry]:
    return [e for e in entries if not e.name.startswith(".")]


def _class_folders(split_dir: Path, split: str) -> list[str]:
    try:
        entries = _visible(list(os.scandir(split_dir)))
    except OSError as exc:
        raise UserError(f"cannot list {str(split_dir)!r}: {exc.strerror or exc}") from None
    folders = sorted(e.name for e in entries if e.is_dir())
    loose = [e.name for e in entries if e.is_file()]
    if loose and not folders:
        hint = (" Sort the validation images into val/<wnid>/ first (the devkit's ground truth gives each "
                "image's class)." if split == "val" else " Extract the per-class archives into train/<wnid>/ first.")
        raise UserError(f"{split_dir} holds {len(loose)} files but no class folders.{hint}")
    if not folders:
        raise UserError(f"{split_dir} holds no class folders (expected {split}/<wnid>/*.JPEG)")
    return folders


def _list_files(folder: Path) -> list[str]:
    try:
        return sorted(e.name for e in _visible(list(os.scandir(folder))) if e.is_file())
    except OSError as exc:
        raise UserError(f"cannot list {str(folder)!r}: {exc.strerror or exc}") from None


def scan(src: str | os.PathLike, synsets: str | os.PathLike | None = None) -> Source:
    """List SRC; raise :class:`UserError` for a tree that is not the expected layout."""
    root = Path(src)
    if not root.is_dir():
        raise UserError(f"source {str(root)!r} is not a folder")
    if not (root / "train").is_dir():
        raise UserError(f"{root} has no train/ folder (expected SRC/train/<wnid>/*.JPEG and SRC/val/<wnid>/*.JPEG)")
    train_folders = _class_folders(root / "train", "train")
    val_folders = _class_folders(root / "val", "val") if (root / "val").is_dir() else None

    if synsets is not None:
        classes = read_synsets(synsets)
        for split, folders in (("train", train_folders), ("val", val_folders or [])):
            unknown = [w for w in folders if w not in classes]
            if unknown:
                raise UserError(f"{len(unknown)} class folder(s) in {split}/ are not in the synsets file "
                                f"{str(synsets)!r}: {', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}")
    else:
        classes = {w: k for k, w in enumerate(train_folders, 1)}
        unknown = [w for w in (val_folders or []) if w not in classes]
        if unknown:
            raise UserError(f"{len(unknown)} class folder(s) in val/ have no train/ folder: "
                            f"{', '.join(unknown[:5])}; pass --synsets to fix the class list")

    def listing(split: str, folders: list[str]) -> SplitFiles:
        rows = [(classes[w], name, f"{split}/{w}/{name}") for w in folders for name in _list_files(root / split / w)]
        # train: grouped by class (the shuffle makes the order irrelevant); val: by file name,
        # i.e. the official ILSVRC2012_val_000NNNNN order once sorted into folders.
        rows.sort(key=(lambda r: (r[0], r[1])) if split == "train" else (lambda r: (r[1], r[0])))
        return SplitFiles(split, tuple(r[2] for r in rows), tuple(r[0] for r in rows))

    train = listing("train", train_folders)
    if not len(train):
        raise UserError(f"{root / 'train'} holds class folders but no files")
    val = listing("val", val_folders) if val_folders is not None else None
    return Source(root=root, classes=classes, train=train, val=val)
