"""Outliers: images whose shape would dominate a padded bucket get bucket(s) of their own.

A rule is a comma-separated list of conditions, each ``FIELD OP NUMBER``:

- ``aspect`` (width / height), ``mp`` (megapixels, 10^6 pixels), ``width``, ``height``;
- ``OP`` is ``>`` or ``<`` (``>=``/``<=`` also accepted);
- ``auto`` (the default) is ``aspect>4,aspect<0.25,mp>60`` (SPEC §9: in the 24,911 Met sizes 63 images
  are wider than 4:1, 97 taller than 1:4, one is over 60 MP); ``none`` turns outliers off.

An image is an outlier of the first condition it meets; each condition's images form one outlier
group (cut by aspect ratio into buckets of at least the minimum size when there are enough of them),
exempt from the minimum fill and listed with the condition as the reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from methbuild.errors import UserError

AUTO = "aspect>4,aspect<0.25,mp>60"
FIELDS = ("aspect", "mp", "width", "height")
_COND = re.compile(r"^\s*(aspect|mp|width|height)\s*(>=|<=|>|<)\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*$")


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: float

    @property
    def text(self) -> str:
        return f"{self.field} {self.op} {self.value:g}"

    def test(self, w: np.ndarray, h: np.ndarray) -> np.ndarray:
        x = {"aspect": lambda: w / h, "mp": lambda: w * h / 1e6,
             "width": lambda: w.astype(np.float64), "height": lambda: h.astype(np.float64)}[self.field]()
        return {">": x > self.value, "<": x < self.value, ">=": x >= self.value, "<=": x <= self.value}[self.op]


def parse_rule(text: str) -> list[Condition]:
    """The conditions of an ``--outliers`` rule (``auto``, ``none`` or ``aspect>4,mp>60,...``)."""
    text = (text or "").strip().lower()
    if text in ("", "none", "off"):
        return []
    if text == "auto":
        text = AUTO
    out = []
    for part in text.split(","):
        m = _COND.match(part)
        if not m:
            raise UserError(f"cannot read outlier condition {part.strip()!r}: write FIELD>NUMBER or FIELD<NUMBER "
                            f"with FIELD one of {', '.join(FIELDS)} (e.g. aspect>4,aspect<0.25,mp>60), or auto/none")
        value = float(m.group(3))
        if not math.isfinite(value) or value <= 0:
            raise UserError(f"outlier condition {part.strip()!r}: the number must be positive and finite")
        out.append(Condition(m.group(1), m.group(2), value))
    return out


def classify(w: np.ndarray, h: np.ndarray, conditions: list[Condition]) -> np.ndarray:
    """Index of the first condition each image meets, −1 for none."""
    which = np.full(w.size, -1, dtype=np.int64)
    for i, c in enumerate(conditions):
        hit = (which < 0) & c.test(w, h)
        which[hit] = i
    return which
