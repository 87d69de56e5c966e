"""MetH-Cultures: the culture a piece comes from, 15 balanced classes (paper 000 §3.2)."""

import pandas as pd

from methbuild.recipe import Recipe, SplitSizes, normalise


class MethCultures(Recipe):
    name = "meth-cultures"
    title = "MetH-Cultures"
    version = "1.0.0"
    seed = 0
    task = "classification"
    description = "Identify the culture in which a piece of art was created from its high-resolution image."
    label_column = "Culture"
    classes = (
        "Roman", "British", "Coptic", "Etruscan", "Greek", "Chinese", "Italian", "German", "French", "Japanese",
        "Spanish", "American", "Cypriot", "Dutch", "Indian",
    )
    split_sizes = SplitSizes(train=800, validation=100, test=100)
    # Raw Met culture strings are "<culture>[, <place or school>]" ("Greek, Attic", "French, Paris")
    # or a country ("China", "Japan"): the part before the first comma is looked up here.
    aliases = {
        "China": "Chinese", "Japan": "Japanese", "Italy": "Italian", "Germany": "German", "France": "French",
        "Spain": "Spanish", "England": "British", "English": "British", "Scottish": "British",
        "Great Britain": "British", "United Kingdom": "British", "Netherlands": "Dutch", "India": "Indian",
        "Cyprus": "Cypriot", "Rome": "Roman", "Greece": "Greek", "Etruria": "Etruscan",
        "United States": "American", "American or European": None, "Egypt, Coptic": "Coptic",
    }

    def class_map(self) -> dict[str, str]:
        m = {normalise(c): c for c in self.classes}
        m.update({normalise(k): v for k, v in self.aliases.items()})
        return m

    def labels(self, meta: pd.DataFrame) -> pd.Series:
        mapping = self.class_map()

        def label(raw: object) -> str | None:
            full = normalise(raw)
            if full in mapping:  # an explicit entry wins (including None = excluded)
                return mapping[full]
            return mapping.get(full.split(",")[0].strip())

        return meta[self.label_column].map(label).astype(object).where(lambda s: s.notna(), None)
