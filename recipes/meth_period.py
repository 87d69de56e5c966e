"""MetH-Period: the exact creation year, 1500–1900, as regression (paper 000 §3.3).

Only objects whose begin and end year are equal. Train and validation are balanced over the
eight 50-year bins (1,000 and 300 per bin = 8,000 / 2,400); the test set takes the rest,
unbalanced (27,362 in the paper; under ``--scale F`` a seeded subset of at most F × 27,362).
"""

import pandas as pd

from methbuild.recipe import Recipe, ShortClasses, SplitSizes, bin_label, exact_year, year_bins

BINS = year_bins(1500, 1900, 50)
TEST_SIZE = 27_362


class MethPeriod(Recipe):
    name = "meth-period"
    title = "MetH-Period"
    version = "1.0.0"
    seed = 0
    task = "regression"
    description = "Predict the exact year (1500-1900) in which a piece of art was created."
    label_column = "Object Begin Date"
    classes = tuple(f"{a}-{b}" for a, b in BINS)  # the strata; the label itself is the year
    split_sizes = SplitSizes(train=1000, validation=300, test=0)  # per bin; test = the rest

    def labels(self, meta: pd.DataFrame) -> pd.Series:
        years = [exact_year(b, e) for b, e in zip(meta["Object Begin Date"], meta["Object End Date"])]
        return pd.Series([str(y) if y is not None and 1500 <= y <= 1900 else None for y in years], index=meta.index,
                         dtype=object)

    def group_of(self, labels: pd.Series) -> pd.Series:
        return labels.map(lambda y: bin_label(int(y), BINS))

    def extra_wanted(self, scale: float) -> int:
        return max(1, round(TEST_SIZE * scale))

    def assign(self, usable: pd.DataFrame, scale: float) -> pd.DataFrame:
        balanced = super().assign(usable, scale)  # train + validation per bin (test 0)
        rest = usable[~usable["ID"].isin(balanced["ID"])]
        test = rest.iloc[: self.extra_wanted(scale)].assign(Split="test")  # rank order = seeded subset
        if test.empty:
            raise ShortClasses(f"{self.title}: no usable images left for the test set")
        return self.order(pd.concat([balanced, test]))

    def label_protocol(self) -> str:
        return ("No one annotated images for this dataset. The label is the creation year from the Met's catalogue: "
                "the MetObjects.csv 'Object Begin Date' of objects whose 'Object End Date' is the same year, "
                "1500-1900; objects dated by a range are left out.")

    def split_protocol(self) -> str:
        return (f"Objects are ranked by a seeded hash of (recipe, seed {self.seed}, object ID). Train and validation "
                "take the first usable objects of each 50-year bin in rank order (balanced over the 8 bins); the test "
                "set takes the next usable objects of any year, unbalanced, as in the paper.")

    def propose(self, meta: pd.DataFrame, top: int = 30) -> pd.DataFrame:
        years = self.labels(meta)
        public = meta["Is Public Domain"].astype(str).str.strip().str.lower() == "true"
        bins = years[public & years.notna()].map(lambda y: bin_label(int(y), BINS))
        counts = bins.value_counts().reindex(list(self.classes), fill_value=0)
        return pd.DataFrame({"value": counts.index, "objects": counts.values, "maps to": counts.index})
