"""Recipes as pure functions of metadata: labels, eligibility, exact and balanced splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recipes
from methbuild.met.metadata import read_met_csv
from methbuild.recipe import PUBLISHED_COLUMNS, Recipe, ShortClasses, SplitSizes, exact_year, year_bins
from tests.conftest import MET_DATA

REAL_ROWS = MET_DATA / "MetObjects_sample2000.csv"


def synthetic_meta(n_per_value: int = 40, seed: int = 0) -> pd.DataFrame:
    """Met-like rows: every class value of every recipe with raw variants, years, public-domain flags."""
    rng = np.random.default_rng(seed)
    media = list(recipes.get("meth-medium").classes) + ["silk ", "HARD-PASTE PORCELAIN", "Silk and metallic thread",
                                                         "Oil on canvas"]
    cultures = list(recipes.get("meth-cultures").classes) + ["Greek, Attic", "China", "French, Paris", "Japan",
                                                             "Nasca", ""]
    rows = []
    oid = 1000
    for i in range(n_per_value * max(len(media), len(cultures))):
        oid += int(rng.integers(1, 5))
        year = int(rng.integers(1450, 1950))
        exact = rng.random() < 0.7
        rows.append({
            "Object ID": str(oid), "Object Number": f"{i:02d}.1", "Is Public Domain": "True" if rng.random() < 0.9 else "False",
            "Medium": media[i % len(media)], "Culture": cultures[i % len(cultures)],
            "Object Begin Date": str(year), "Object End Date": str(year if exact else year + 20),
        })
    return pd.DataFrame(rows)


def fake_crawl(cand: pd.DataFrame, seed: int = 1, big: float = 0.3) -> pd.DataFrame:
    """Pretend every candidate was downloaded, with sizes; a few too small, some above 12 MP."""
    rng = np.random.default_rng(seed)
    n = len(cand)
    w = rng.integers(300, 3000, n)
    h = rng.integers(300, 3000, n)
    large = rng.random(n) < big
    w[large], h[large] = 4000, 3500
    return cand.assign(width=w, height=h)


def usable_of(recipe: Recipe, cand: pd.DataFrame) -> pd.DataFrame:
    crawled = fake_crawl(cand)
    return crawled[recipe.usable(crawled["width"], crawled["height"])].reset_index(drop=True)


@pytest.mark.parametrize("name", ["meth-medium", "meth-cultures", "meth-period", "meth-sr"])
def test_exact_balanced_disjoint_splits(name):
    recipe = recipes.get(name)
    cand = recipe.candidates(synthetic_meta())
    scale = 0.003 if name != "meth-period" else 0.005
    table = recipe.assign(usable_of(recipe, cand), scale)
    assert table["ID"].is_unique  # disjoint splits
    assert set(table["Split"]) <= {"train", "validation", "test"}
    wanted = recipe.wanted(scale)
    for group, sizes in wanted.items():
        rows = table[table["Group"] == group]
        counts = rows["Split"].value_counts()
        assert counts.get("train", 0) == sizes.train
        assert counts.get("validation", 0) == sizes.validation
        if name != "meth-period":
            assert counts.get("test", 0) == sizes.test
    if name == "meth-period":
        assert (table["Split"] == "test").sum() == round(27_362 * scale)
    # a pure function of (metadata, recipe, seed): same input → same table; another seed → another table
    again = recipes.get(name).assign(usable_of(recipe, recipe.candidates(synthetic_meta())), scale)
    pd.testing.assert_frame_equal(table, again)
    other = recipes.get(name, seed=1)
    t2 = other.assign(usable_of(other, other.candidates(synthetic_meta())), scale)
    assert set(t2["ID"]) != set(table["ID"])


def test_rank_does_not_depend_on_other_objects():
    recipe = recipes.get("meth-medium")
    cand = recipe.candidates(synthetic_meta())
    sub = recipe.candidates(synthetic_meta().iloc[::3])
    full_rank = dict(zip(cand["ID"], cand["rank"]))
    assert all(full_rank[i] == r for i, r in zip(sub["ID"], sub["rank"]))


def test_full_sizes_match_the_spec():
    assert recipes.get("meth-medium").split_sizes == SplitSizes(1000, 100, 100)
    assert len(recipes.get("meth-medium").classes) == 23
    assert recipes.get("meth-cultures").split_sizes == SplitSizes(800, 100, 100)
    assert len(recipes.get("meth-cultures").classes) == 15
    period = recipes.get("meth-period")
    w = period.wanted(1.0)
    assert len(w) == 8 and sum(s.train for s in w.values()) == 8000 and sum(s.validation for s in w.values()) == 2400
    assert period.extra_wanted(1.0) == 27_362
    assert recipes.get("meth-sr").split_sizes == SplitSizes(16_000, 0, 4_000)


def test_label_normalisation():
    medium = recipes.get("meth-medium")
    assert medium.label_of("  silk ") == "Silk"
    assert medium.label_of("HARD-PASTE   porcelain") == "Hard-paste porcelain"
    assert medium.label_of("Silk and metallic thread") is None
    cultures = recipes.get("meth-cultures")
    meta = pd.DataFrame({"Culture": ["Greek, Attic", "China", "French, Paris", "Japan", "Nasca", "", "roman",
                                     "British, London", "American or European"]})
    assert cultures.labels(meta).tolist() == ["Greek", "Chinese", "French", "Japanese", None, None, "Roman",
                                              "British", None]


def test_period_exact_years_and_bins():
    assert exact_year("1750", "1750") == 1750 and exact_year("1750", "1760") is None and exact_year("", "") is None
    assert year_bins()[-1] == (1850, 1900) and year_bins()[0] == (1500, 1549) and len(year_bins()) == 8
    period = recipes.get("meth-period")
    meta = pd.DataFrame({"Object ID": ["1", "2", "3", "4", "5", "6"], "Is Public Domain": ["True"] * 6,
                         "Object Begin Date": ["1500", "1499", "1900", "1901", "1600", "1850"],
                         "Object End Date": ["1500", "1499", "1900", "1901", "1610", "1850"]})
    cand = period.candidates(meta).sort_values("ID")
    assert cand["ID"].tolist() == [1, 3, 6]
    assert dict(zip(cand["ID"], cand["Group"])) == {1: "1500-1549", 3: "1850-1900", 6: "1850-1900"}


def test_sr_keeps_only_originals_above_12_megapixels():
    sr = recipes.get("meth-sr")
    w = pd.Series([4000, 4243, 4000, 400, 6000])
    h = pd.Series([3000, 2829, 3001, 40000, 3000])
    assert sr.usable(w, h).tolist() == [False, True, True, False, True]  # > 12 MP strictly, and >= 500 a side
    medium = recipes.get("meth-medium")
    assert medium.usable(pd.Series([500, 499]), pd.Series([500, 4000])).tolist() == [True, False]


def test_short_classes_are_all_named():
    recipe = recipes.get("meth-medium")
    cand = recipe.candidates(synthetic_meta(n_per_value=3))
    with pytest.raises(ShortClasses) as err:
        recipe.assign(usable_of(recipe, cand), 0.01)
    msg = str(err.value)
    assert "Gold:" in msg and "Wood:" in msg and "of 12" in msg


def test_candidates_on_the_real_met_rows():
    meta = read_met_csv(REAL_ROWS)
    medium = recipes.get("meth-medium").candidates(meta)
    assert {"Bronze", "Marble", "Gold", "Terracotta"} <= set(medium["Label"])
    cultures = recipes.get("meth-cultures").candidates(meta)
    greek_raw = set(meta.loc[meta["Object ID"].astype(int).isin(cultures.loc[cultures["Label"] == "Greek", "ID"]), "Culture"])
    assert "Greek, Attic" in greek_raw
    public = set(meta.loc[meta["Is Public Domain"].astype(str) == "True", "Object ID"].astype(int))
    assert set(medium["ID"]) <= public
    period = recipes.get("meth-period").candidates(meta)
    assert len(period) > 100 and period["Label"].astype(int).between(1500, 1900).all()


def test_a_fifth_recipe_is_one_class():
    class Demo(Recipe):
        name = "demo-fifth"
        title = "Demo"
        label_column = "Medium"
        classes = ("Gold", "Silver")
        split_sizes = SplitSizes(2, 1, 1)

    try:
        assert recipes.all_recipes()["demo-fifth"] is Demo
        cand = Demo().candidates(synthetic_meta())
        table = Demo().assign(usable_of(Demo(), cand), 1.0)
        assert table["Split"].value_counts().to_dict() == {"train": 4, "validation": 2, "test": 2}
    finally:
        Recipe.registry.pop("demo-fifth", None)


def test_published_columns():
    assert PUBLISHED_COLUMNS == ["ID", "Label", "Image file", "Width", "Height", "Product size", "Aspect ratio", "Split"]
