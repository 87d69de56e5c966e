"""The figure: one row per input, in the right group, with the right statistics (data, not pixels)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from methbuild.stats.figure import box_rows, draw


def images_of(spec):
    rows = []
    for name, sizes in spec.items():
        rows += [{"input": name, "width": w, "height": h} for w, h in sizes]
    df = pd.DataFrame(rows)
    df["width"] = df["width"].astype("Int64")
    df["height"] = df["height"].astype("Int64")
    return df


def test_rows_are_grouped_reference_above_meth():
    rng = np.random.default_rng(0)
    spec = {n: [(int(rng.integers(100, 5000)), int(rng.integers(100, 5000))) for _ in range(50)]
            for n in ("MetH-SR", "ImageNet", "MetH-Medium", "COCO")}
    spec["ImageNet"].append((pd.NA, pd.NA))  # an unreadable image is not drawn
    names = list(spec)
    groups = ["meth", "reference", "meth", "reference"]
    rows = box_rows(images_of(spec), names, groups)
    assert [(r.name, r.group) for r in rows] == [("ImageNet", "reference"), ("COCO", "reference"),
                                                 ("MetH-SR", "meth"), ("MetH-Medium", "meth")]
    assert [r.n for r in rows] == [50, 50, 50, 50]
    sr = next(r for r in rows if r.name == "MetH-SR")
    w = np.array([s[0] for s in spec["MetH-SR"]], float)
    h = np.array([s[1] for s in spec["MetH-SR"]], float)
    assert sr.product["med"] == np.median(w * h)
    assert (sr.product["q1"], sr.product["q3"]) == tuple(np.percentile(w * h, [25, 75]))
    assert (sr.aspect["whislo"], sr.aspect["whishi"]) == ((w / h).min(), (w / h).max())
    assert np.isclose(sr.aspect["mean"], (w / h).mean())

    fig = draw(rows)
    ax_p, ax_a = fig.axes
    labels = [t.get_text() for t in ax_p.get_yticklabels()]
    ticks = list(ax_p.get_yticks())
    by_pos = [lab for _, lab in sorted(zip(ticks, labels), reverse=True)]  # top to bottom
    assert by_pos == ["ImageNet (50)", "COCO (50)", "MetH-SR (50)", "MetH-Medium (50)"]
    for ax in (ax_p, ax_a):
        assert ax.get_xscale() == "log"
        dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
        assert len(dashed) == 1 and dashed[0].get_ydata()[0] == 2.5  # between COCO (3) and MetH-SR (2)
    red = [ln for ln in ax_a.get_lines() if ln.get_color() == "red"]
    assert len(red) == 1 and red[0].get_xdata()[0] == 1.0
    # Median lines of the aspect panel, top to bottom, sit at the computed medians.
    medians = sorted(((ln.get_ydata().mean(), ln.get_xdata()[0]) for ln in ax_a.get_lines()
                      if ln.get_color() == "black" and ln.get_xdata()[0] == ln.get_xdata()[1]
                      and ln.get_linestyle() == "-" and len(ln.get_xdata()) == 2
                      and abs(ln.get_ydata()[1] - ln.get_ydata()[0]) > 0.5), reverse=True)
    assert np.allclose([m for _, m in medians], [r.aspect["med"] for r in rows])


def test_one_group_has_no_dashed_line():
    rows = box_rows(images_of({"a": [(10, 20), (30, 20)], "b": [(5, 5)]}), ["a", "b"], ["reference", "reference"])
    fig = draw(rows)
    assert not [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_linestyle() == "--"]
