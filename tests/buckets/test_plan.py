"""The plan's layout: fill merges pick the neighbour that raises padding least; outlier rules; resize shapes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from methbuild.buckets.outliers import classify, parse_rule
from methbuild.buckets.plan import Group, Layout, Options, make_plan
from methbuild.buckets.resize import bucket_shapes
from methbuild.errors import UserError


def test_fill_merges_into_the_neighbour_that_raises_padding_least():
    # aspect order: two narrow images | one square image (too small a bucket) | two almost-square images
    w = np.array([10, 10, 40, 41, 42])
    h = np.array([40, 40, 40, 40, 40])
    lay = Layout(w, h, [Group(np.arange(5), [0, 2, 3])], Options(min_bucket=2, memory_budget=10**12))
    before = lay.padding()
    lay.fill()
    # with the narrow pair: +2400 padded pixels; with the near-square pair: +80
    assert lay.groups[0].starts == [0, 2]
    assert lay.padding() - before == 80


def test_a_too_small_super_bucket_joins_its_pixel_neighbour():
    w = np.array([10, 11, 12, 100, 101, 102, 103])
    h = np.array([10, 10, 10, 100, 100, 100, 100])
    groups = [Group(np.array([0, 1, 2]), [0]), Group(np.array([3]), [0]), Group(np.array([4, 5, 6]), [0])]
    lay = Layout(w, h, groups, Options(min_bucket=2, memory_budget=10**12))
    lay.fill()
    assert len(lay.groups) == 2
    assert sorted(lay.groups[1].members.tolist()) == [3, 4, 5, 6]  # the big one joins the big ones


def test_outlier_rules():
    assert [c.text for c in parse_rule("auto")] == ["aspect > 4", "aspect < 0.25", "mp > 60"]
    assert parse_rule("none") == []
    conds = parse_rule("mp>1, width>=5000")
    which = classify(np.array([2000, 5000, 100]), np.array([1000, 10, 100]), conds)
    assert which.tolist() == [0, 1, -1]  # the first condition met wins
    for bad in ("aspect>>4", "size>3", "aspect>-1", "mp>0"):
        with pytest.raises(UserError):
            parse_rule(bad)


def test_outlier_buckets_are_exempt_and_listed():
    rng = np.random.default_rng(0)
    w = rng.integers(500, 1500, 400)
    h = rng.integers(500, 1500, 400)
    w[:5] = 9000  # five panoramas
    h[:5] = 1000
    sizes = pd.DataFrame({"path": [str(i) for i in range(400)], "width": w, "height": h})
    plan = make_plan(sizes, Options(min_bucket=32, memory_budget=10**12, batch=4))
    outl = [s for s in plan.meta["super_buckets"] if s["outlier"]]
    assert len(outl) == 1 and outl[0]["outlier"] == "aspect > 4" and outl[0]["images"] == 5
    assert outl[0]["exempt_from_fill"]
    assert set(plan.rows.loc[:4, "super_bucket"]) == {outl[0]["id"]}
    assert all(b["images"] >= 32 for b in plan.meta["buckets"] if b["outlier"] is None)


def test_resize_bucket_shapes():
    shapes = bucket_shapes(2**20, 64)
    assert (1024, 1024) in shapes
    assert all(a % 64 == 0 and b % 64 == 0 and a * b <= 2**20 and 0.25 <= a / b <= 4 for a, b in shapes)
    ar = [a / b for a, b in shapes]
    assert ar == sorted(ar) and len(set(ar)) == len(ar)
