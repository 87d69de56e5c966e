"""The recipe base: what a MetH dataset is, declared as data; how to select and split it, once.

A recipe is one small module in ``recipes/`` holding one :class:`Recipe` subclass: its name,
version, seed, pinned class list with a normalisation map from raw Met strings, eligibility
rules and split sizes. Subclasses register themselves, so adding a dataset is one new file.
Everything here is pure: metadata in, a ranked candidate table or a split manifest out; no I/O.

Selection is a pure function of (metadata, recipe, seed, which images turned out usable):
candidates are ranked by a seeded hash of their object ID, so the rank of an object never
depends on which other objects were crawled, and each split takes the first usable objects
of each class in rank order.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from methbuild.errors import UserError

# The published MetH CSV columns, in order (HPAI-BSC MetH-baselines loaders read these).
PUBLISHED_COLUMNS = ["ID", "Label", "Image file", "Width", "Height", "Product size", "Aspect ratio", "Split"]
SPLITS = ("train", "validation", "test")
MIN_SIDE = 500  # "high resolution": at least 500×500


@dataclass(frozen=True)
class SplitSizes:
    train: int
    validation: int
    test: int

    @property
    def total(self) -> int:
        return self.train + self.validation + self.test

    def scaled(self, f: float) -> SplitSizes:
        return SplitSizes(*(max(1, round(n * f)) if n else 0 for n in (self.train, self.validation, self.test)))


def normalise(text: object) -> str:
    """Case- and whitespace-insensitive form of a raw Met string."""
    return " ".join(str(text or "").split()).casefold()


class ShortClasses(UserError):
    """Not enough usable images for some classes."""


class Recipe:
    """Base class; subclasses declare the class attributes and, if needed, override the hooks."""

    registry: ClassVar[dict[str, type[Recipe]]] = {}

    name: ClassVar[str] = ""  # CLI name, e.g. "meth-medium"
    title: ClassVar[str] = ""  # dataset name and folder, e.g. "MetH-Medium"
    version: ClassVar[str] = "1.0.0"
    seed: ClassVar[int] = 0
    task: ClassVar[str] = "classification"
    description: ClassVar[str] = ""
    label_column: ClassVar[str | None] = None  # the MetObjects column the label comes from
    classes: ClassVar[tuple[str, ...]] = ()  # pinned class list
    aliases: ClassVar[dict[str, str]] = {}  # normalised raw string → class (beyond the class names)
    split_sizes: ClassVar[SplitSizes | None] = None  # per class
    min_side: ClassVar[int] = MIN_SIDE
    min_megapixels: ClassVar[float] = 0.0  # strictly more than this many MP (SR: 12)
    oversample: ClassVar[float] = 1.25  # first crawl round: this many candidates per wanted image

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            if cls.name in Recipe.registry and Recipe.registry[cls.name] is not cls:
                raise TypeError(f"two recipes are named {cls.name!r}")
            Recipe.registry[cls.name] = cls

    def __init__(self, seed: int | None = None) -> None:
        self.seed = self.seed if seed is None else seed  # type: ignore[misc]

    # ------------------------------------------------------------------ labels
    def class_map(self) -> dict[str, str]:
        m = {normalise(c): c for c in self.classes}
        m.update({normalise(k): v for k, v in self.aliases.items()})
        return m

    def label_of(self, raw: object) -> str | None:
        """The class of a raw metadata value, or None if it is not one of ours."""
        return self.class_map().get(normalise(raw))

    def labels(self, meta: pd.DataFrame) -> pd.Series:
        """The label of every row (None where the row is not eligible for a label)."""
        mapping = self.class_map()
        return meta[self.label_column].map(lambda v: mapping.get(normalise(v)))

    # ------------------------------------------------------------------ candidates
    def candidates(self, meta: pd.DataFrame) -> pd.DataFrame:
        """Eligible objects from metadata alone: ``ID, Label, Group, rank`` (+ accession), rank-sorted."""
        public = meta["Is Public Domain"].astype(str).str.strip().str.lower() == "true"
        labels = self.labels(meta)
        keep = public & labels.notna()
        out = pd.DataFrame({
            "ID": pd.to_numeric(meta.loc[keep, "Object ID"], errors="coerce"),
            "Label": labels[keep],
        })
        if "Object Number" in meta:
            out["Accession number"] = meta.loc[keep, "Object Number"].astype(str)
        out = out.dropna(subset=["ID"]).astype({"ID": "int64"}).drop_duplicates("ID")
        out["Group"] = self.group_of(out["Label"])
        out["rank"] = self.rank(out["ID"])
        return out.sort_values("rank", kind="stable").reset_index(drop=True)

    def group_of(self, labels: pd.Series) -> pd.Series:
        """The stratum of each label (the class itself; Period: its 50-year bin)."""
        return labels.astype(str)

    def rank(self, ids: pd.Series) -> np.ndarray:
        """A seeded pseudo-random rank per object ID, independent of the other IDs."""
        key = f"{self.name}:{self.seed}:".encode()
        return np.array([int.from_bytes(hashlib.blake2b(key + str(int(i)).encode(), digest_size=8).digest(), "big")
                         for i in ids], dtype=np.uint64)

    # ------------------------------------------------------------------ sizes
    def groups(self) -> tuple[str, ...]:
        return self.classes

    def wanted(self, scale: float) -> dict[str, SplitSizes]:
        """Split sizes per group under ``scale``."""
        assert self.split_sizes is not None
        sizes = self.split_sizes.scaled(scale)
        return {g: sizes for g in self.groups()}

    def usable(self, width: pd.Series, height: pd.Series) -> pd.Series:
        """The size rule: at least ``min_side`` on both sides, more than ``min_megapixels``."""
        ok = (width >= self.min_side) & (height >= self.min_side)
        if self.min_megapixels:
            ok &= width * height > self.min_megapixels * 1e6
        return ok

    def extra_wanted(self, scale: float) -> int:
        """Images wanted beyond the per-group sizes, from any group (Period's unbalanced test set)."""
        return 0

    # ------------------------------------------------------------------ splits
    def assign(self, usable: pd.DataFrame, scale: float) -> pd.DataFrame:
        """Split the rank-sorted usable candidates: per group, the first ``train`` go to train,
        the next ``validation`` to validation, the next ``test`` to test. Raises
        :class:`ShortClasses` naming every group that has too few."""
        wanted = self.wanted(scale)
        short = []
        parts = []
        for group, sizes in wanted.items():
            rows = usable[usable["Group"] == group]
            if len(rows) < sizes.total:
                short.append(f"{group}: {len(rows)} of {sizes.total}")
                continue
            rows = rows.iloc[: sizes.total].copy()
            rows["Split"] = ["train"] * sizes.train + ["validation"] * sizes.validation + ["test"] * sizes.test
            parts.append(rows)
        if short:
            raise ShortClasses(f"{self.title}: not enough eligible images with a usable image for "
                               f"{len(short)} class(es): " + "; ".join(short))
        out = pd.concat(parts) if parts else usable.iloc[:0].assign(Split=[])
        return self.order(out)

    @staticmethod
    def order(df: pd.DataFrame) -> pd.DataFrame:
        split_order = {s: i for i, s in enumerate(SPLITS)}
        return (df.assign(_s=df["Split"].map(split_order)).sort_values(["_s", "rank"], kind="stable")
                .drop(columns="_s").reset_index(drop=True))

    def shortfall(self, usable: pd.DataFrame, scale: float) -> dict[str, int]:
        """How many more usable images each group needs (the key ``"*"`` = any group)."""
        counts = usable["Group"].value_counts()
        need = {g: s.total - int(counts.get(g, 0)) for g, s in self.wanted(scale).items()}
        need = {g: n for g, n in need.items() if n > 0}
        extra = self.extra_wanted(scale)
        if extra:
            spare = sum(max(0, int(counts.get(g, 0)) - s.total) for g, s in self.wanted(scale).items())
            if spare < extra:
                need["*"] = extra - spare
        return need

    # ------------------------------------------------------------------ description
    def label_protocol(self) -> str:
        """How a label was obtained (the dataset card and Croissant's ``rai:dataAnnotationProtocol``)."""
        if not self.label_column:
            return ("Labels and splits are those of the manifest the dataset was rebuilt from (an earlier build's CSV "
                    "or a published MetH CSV); methbuild copied them and did not derive them.")
        return (f"No one annotated images for this dataset. The label is the Met's own catalogue value in the "
                f"MetObjects.csv column '{self.label_column}', mapped to one of {len(self.classes)} classes pinned in "
                f"the recipe {self.name} {self.version} by its normalisation map (case and spacing folded, "
                f"{len(self.aliases)} aliases from raw Met strings); objects whose value maps to no class are "
                "left out.")

    def split_protocol(self) -> str:
        """How objects were put into splits."""
        if not self.name:
            return "Splits as given by the manifest."
        return (f"Objects are ranked by a seeded hash of (recipe, seed {self.seed}, object ID); per class (stratum) "
                "the first usable ones in rank order go to train, the next to validation, the next to test, so the "
                "splits are disjoint and a pure function of metadata, recipe and seed.")

    def describe(self) -> dict:
        sizes = self.split_sizes
        return {
            "name": self.name, "title": self.title, "version": self.version, "seed": self.seed, "task": self.task,
            "description": self.description, "label_column": self.label_column, "classes": list(self.classes),
            "aliases": dict(self.aliases), "split_sizes_per_group": None if sizes is None else sizes.__dict__,
            "min_side": self.min_side, "min_megapixels": self.min_megapixels,
        }

    def propose(self, meta: pd.DataFrame, top: int = 30) -> pd.DataFrame:
        """Candidate class values by count of eligible (public-domain) objects, for a person to pin."""
        if not self.label_column:
            raise UserError(f"{self.name} has no class list to propose")
        public = meta["Is Public Domain"].astype(str).str.strip().str.lower() == "true"
        raw = meta.loc[public, self.label_column].map(normalise)
        raw = raw[raw != ""]
        counts = raw.value_counts().head(top)
        table = pd.DataFrame({"value": counts.index, "objects": counts.values})
        table["maps to"] = self.labels(pd.DataFrame({self.label_column: table["value"]})).fillna("").values
        return table


def year_bins(start: int = 1500, stop: int = 1900, width: int = 50) -> list[tuple[int, int]]:
    """Inclusive year bins; the last one also holds ``stop`` (1850–1900)."""
    edges = list(range(start, stop, width))
    return [(a, a + width - 1 if a + width < stop else stop) for a in edges]


def bin_label(year: int, bins: list[tuple[int, int]]) -> str | None:
    for a, b in bins:
        if a <= year <= b:
            return f"{a}-{b}"
    return None


_INT = re.compile(r"^-?\d+$")


def exact_year(begin: object, end: object) -> int | None:
    """The creation year when begin and end are the same integer year, else None."""
    b, e = str(begin).strip(), str(end).strip()
    if _INT.match(b) and b == e:
        return int(b)
    return None


__all__ = ["Recipe", "SplitSizes", "ShortClasses", "PUBLISHED_COLUMNS", "SPLITS", "normalise", "year_bins",
           "bin_label", "exact_year"]
