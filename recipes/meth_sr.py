"""MetH-SR: super-resolution on originals above 12 MP (paper 000 §3.4).

16,000 train / 4,000 test (the text's figure; its table's 18,000 is a typo). The test set
ships bicubic ×2/×4/×8/×16 copies (``lowres/``); train ships only the originals.
"""

import pandas as pd

from methbuild.recipe import Recipe, SplitSizes


class MethSR(Recipe):
    name = "meth-sr"
    title = "MetH-SR"
    version = "1.0.0"
    seed = 0
    task = "super-resolution"
    description = "Recover the high-resolution original from its bicubic x2/x4/x8/x16 down-sampled copies."
    label_column = None
    classes = ("all",)
    split_sizes = SplitSizes(train=16_000, validation=0, test=4_000)
    min_megapixels = 12.0
    oversample = 10.0  # about 11% of Met originals are above 12 MP
    lowres_scales = (2, 4, 8, 16)

    def labels(self, meta: pd.DataFrame) -> pd.Series:
        return pd.Series([""] * len(meta), index=meta.index, dtype=object)

    def group_of(self, labels: pd.Series) -> pd.Series:
        return pd.Series(["all"] * len(labels), index=labels.index, dtype=object)

    def label_protocol(self) -> str:
        return ("There are no labels: the target of super-resolution is the high-resolution original itself, and the "
                "inputs are its bicubic copies in lowres/X<s>/ (test set).")

    def split_protocol(self) -> str:
        return (f"Objects whose original is above 12 MP are ranked by a seeded hash of (recipe, seed {self.seed}, "
                "object ID); the first usable ones go to train, the next to test.")

    def propose(self, meta: pd.DataFrame, top: int = 30) -> pd.DataFrame:
        public = meta["Is Public Domain"].astype(str).str.strip().str.lower() == "true"
        return pd.DataFrame({"value": ["public-domain objects"], "objects": [int(public.sum())],
                             "maps to": ["all (kept if the original is > 12 MP)"]})
