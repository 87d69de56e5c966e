"""MetH-Medium: the medium (main material) of a piece, 23 balanced classes (paper 000 §3.1)."""

from methbuild.recipe import Recipe, SplitSizes


class MethMedium(Recipe):
    name = "meth-medium"
    title = "MetH-Medium"
    version = "1.0.0"
    seed = 0
    task = "classification"
    description = "Identify the medium a piece of art is made of from its high-resolution image."
    label_column = "Medium"
    # The paper names Gold, Silver, Woodcut, Limestone, Silk, Hard-paste/Soft-paste/generic porcelain and
    # Stone; the rest are the most frequent single-material media of public-domain Met objects.
    # A raw Medium string matches only as a whole (case and whitespace aside): "Silk and metallic
    # thread" is not Silk.
    classes = (
        "Gold", "Silver", "Bronze", "Woodcut", "Etching", "Engraving", "Lithograph", "Limestone", "Marble",
        "Silk", "Cotton", "Wool", "Hard-paste porcelain", "Soft-paste porcelain", "Porcelain", "Stone",
        "Terracotta", "Glass", "Ivory", "Steel", "Iron", "Earthenware", "Wood",
    )
    aliases = {
        "Hard paste porcelain": "Hard-paste porcelain",
        "Soft paste porcelain": "Soft-paste porcelain",
        "Terra cotta": "Terracotta",
        "Terra-cotta": "Terracotta",
        "Woodcut print": "Woodcut",
        "Engraving and etching": "Engraving",
    }
    split_sizes = SplitSizes(train=1000, validation=100, test=100)
