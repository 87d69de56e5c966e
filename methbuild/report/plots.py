"""The report's figures, drawn with matplotlib (Agg) into small PNG files beside index.html."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DPI = 80
SPLIT_COLOURS = {"train": "#4c78a8", "validation": "#f58518", "val": "#f58518", "test": "#54a24b",
                 "downloaded": "#4c78a8"}


def _figure(w: float, h: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained")


def _save(fig, path: Path) -> str:
    fig.savefig(path, format="png", dpi=DPI)
    return path.name


def label_bars(classes: list[str], splits: list[str], counts: dict, path: Path, title: str) -> str:
    """Horizontal bars, one per class, stacked by split."""
    n = len(classes)
    fig = _figure(8, min(2 + 0.22 * n, 14))
    ax = fig.subplots()
    y = np.arange(n)[::-1]
    left = np.zeros(n)
    for s in splits:
        v = np.array([counts.get((c, s), 0) for c in classes], dtype=float)
        ax.barh(y, v, left=left, color=SPLIT_COLOURS.get(s, None), label=s, height=0.75)
        left += v
    ax.set_yticks(y, [c if len(c) <= 28 else c[:27] + "…" for c in classes], fontsize=8)
    ax.set_xlabel("images")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def year_histogram(years_by_split: dict[str, np.ndarray], edges: list[int], path: Path) -> str:
    """Stacked histogram of creation years over the given bin edges (MetH-Period: 50-year bins)."""
    fig = _figure(8, 3.4)
    ax = fig.subplots()
    data = [np.asarray(v, dtype=float) for v in years_by_split.values()]
    ax.hist(data, bins=edges, stacked=True, label=list(years_by_split),
            color=[SPLIT_COLOURS.get(s, None) for s in years_by_split], edgecolor="white")
    ax.set_xticks(edges)
    ax.set_xlabel("creation year (50-year bins)")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def geometry(rows, path: Path) -> str:
    """Paper 000's Figure 2 for the dataset and the --against datasets (methbuild.stats.figure)."""
    from methbuild.stats.figure import draw

    fig = draw(rows)
    fig.set_size_inches(10, 1.2 + 0.42 * max(len(rows), 1))
    return _save(fig, path)


def padding_curve(curve: dict, path: Path) -> str:
    fig = _figure(7, 3.6)
    ax = fig.subplots()
    x = curve["m"]
    k = curve["superbuckets"]
    ax.plot(x, curve["b2b"], "o-", color="tab:blue", label=f"B2B (K={k} super-buckets)")
    ax.plot(x, curve["equal"], "s--", color="tab:orange", label=f"equal-count (K={k})")
    ax.axhline(curve["one_bucket"], color="tab:red", linestyle=":", label="one bucket")
    if curve["chosen"] in x:
        i = x.index(curve["chosen"])
        ax.plot([curve["chosen"]], [curve["b2b"][i]], "o", markersize=12, markerfacecolor="none", color="black",
                label=f"the plan shown (M={curve['chosen']})")
    ax.set_xlabel("buckets per super-bucket (M)")
    ax.set_ylabel("padding (% of padded pixels)")
    ax.set_ylim(0, max(5.0, curve["one_bucket"] * 1.08, max(curve["equal"]) * 1.08))
    ax.set_xticks(x)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
