"""The comparison figure in the style of paper 000, Figure 2.

Two panels, both on log scale: product size (w·h, pixels) and aspect ratio (w/h). One horizontal
box plot per input; reference inputs on top, MetH inputs below a dashed blue line; a red vertical
line at aspect ratio 1.0 separates portrait (left) from landscape (right). Boxes span Q1–Q3 with
the median; whiskers reach the minimum and maximum (no outlier dots: with 100,000 images a row
they would be a smear, and the extremes are what the paper's argument is about); a diamond marks
the mean.

:func:`box_rows` computes what is drawn (tests check it); :func:`draw` draws it; :func:`save`
writes PNG and SVG atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from methbuild.io.atomic import atomic_path

GROUPS = ("reference", "meth")
COLORS = {"reference": "#9ecae1", "meth": "#fdae6b"}


@dataclass(frozen=True)
class BoxRow:
    """One row of the figure: an input, its group, and the box statistics of both panels."""

    name: str
    group: str
    n: int
    product: dict  # matplotlib bxp stats: whislo, q1, med, q3, whishi, mean
    aspect: dict


def _box(values: np.ndarray, label: str) -> dict:
    if len(values) == 0:
        return {"label": label, "whislo": np.nan, "q1": np.nan, "med": np.nan, "q3": np.nan, "whishi": np.nan,
                "mean": np.nan, "fliers": []}
    q = np.percentile(values, [0, 25, 50, 75, 100])
    return {"label": label, "whislo": float(q[0]), "q1": float(q[1]), "med": float(q[2]), "q3": float(q[3]),
            "whishi": float(q[4]), "mean": float(values.mean()), "fliers": []}


def box_rows(images: pd.DataFrame, names: Sequence[str], groups: Sequence[str]) -> list[BoxRow]:
    """Rows top to bottom: reference inputs in the given order, then MetH inputs in the given order.

    ``images`` has ``input``, ``width``, ``height`` (rows without a size are left out).
    """
    ok = images["width"].notna() & images["height"].notna()
    good = images.loc[ok]
    rows = []
    for group in GROUPS:
        for name, g in zip(names, groups):
            if g != group:
                continue
            sub = good.loc[good["input"] == name]
            w = sub["width"].to_numpy(dtype="float64")
            h = sub["height"].to_numpy(dtype="float64")
            rows.append(BoxRow(name, g, len(sub), _box(w * h, name), _box(w / h if len(h) else w, name)))
    return rows


def draw(rows: Sequence[BoxRow], title: str | None = None):
    """A matplotlib Figure (Agg, no display needed) with the two panels."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    n = len(rows)
    fig = Figure(figsize=(11, 1.2 + 0.42 * max(n, 1)), layout="constrained")
    ax_p, ax_a = fig.subplots(1, 2, sharey=True)
    positions = list(range(n, 0, -1))  # first row at the top
    drawable = [(r, p) for r, p in zip(rows, positions) if r.n]
    for ax, key in ((ax_p, "product"), (ax_a, "aspect")):
        if drawable:
            art = ax.bxp([getattr(r, key) for r, _ in drawable], positions=[p for _, p in drawable],
                         orientation="horizontal", widths=0.6, showmeans=True, showfliers=False, patch_artist=True,
                         meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black",
                                    "markersize": 4},
                         medianprops={"color": "black"})
            for patch, (r, _) in zip(art["boxes"], drawable):
                patch.set_facecolor(COLORS[r.group])
        ax.set_xscale("log")
        ax.grid(True, axis="x", which="major", alpha=0.3)
        n_ref = sum(r.group == "reference" for r in rows)
        if 0 < n_ref < n:  # the dashed line between reference datasets and MetH ones
            ax.axhline(n - n_ref + 0.5, color="tab:blue", linestyle="--", linewidth=1.2)
    ax_a.axvline(1.0, color="red", linewidth=1.2)
    ax_p.set_yticks(positions, [f"{r.name} ({r.n:,})" for r in rows])
    ax_p.set_ylim(0.4, n + 0.6)
    ax_p.set_xlabel("product size (width × height, pixels)")
    ax_a.set_xlabel("aspect ratio (width / height)")
    ax_a.text(0.99, 1.01, "landscape →", transform=ax_a.transAxes, ha="right", va="bottom", fontsize=8)
    ax_a.text(0.01, 1.01, "← portrait", transform=ax_a.transAxes, ha="left", va="bottom", fontsize=8)
    # Aspect ratios read best as plain numbers at powers of two around 1.
    lo, hi = ax_a.get_xlim()
    ticks = [2.0 ** k for k in range(-8, 9) if lo <= 2.0 ** k <= hi]
    ax_a.xaxis.set_major_locator(FixedLocator(ticks))
    ax_a.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}" if v >= 0.1 else f"1/{1 / v:g}"))
    ax_a.xaxis.set_minor_formatter(NullFormatter())
    if title:
        fig.suptitle(title)
    return fig


def save(fig, out: str | os.PathLike, stem: str = "figure") -> list[Path]:
    """Write ``out/<stem>.png`` (150 dpi) and ``out/<stem>.svg`` atomically."""
    written = []
    for ext in ("png", "svg"):
        final = Path(out) / f"{stem}.{ext}"
        with atomic_path(final) as tmp:
            fig.savefig(tmp, format=ext, dpi=150)
        written.append(final)
    return written
