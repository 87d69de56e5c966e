"""Raw Met strings the synthetic mirror draws from.

These are *raw* values as they appear in the Met's data (case, whitespace and qualifier
variants included), so that the recipes' normalisation maps meet what they meet in the real
CSV. Weights give a realistic skew (a few very common values, a long tail).
"""

from __future__ import annotations

# (raw string, weight). The first 23 entries are the media the MetH-Medium recipe pins;
# variants in case and whitespace follow; then a tail of other real-world media.
MEDIUMS: tuple[tuple[str, float], ...] = (
    ("Gold", 3.0), ("Silver", 4.0), ("Bronze", 4.0), ("Woodcut", 5.0), ("Etching", 8.0),
    ("Engraving", 9.0), ("Lithograph", 5.0), ("Limestone", 2.5), ("Marble", 2.5), ("Silk", 4.0),
    ("Cotton", 2.5), ("Wool", 2.0), ("Hard-paste porcelain", 2.5), ("Soft-paste porcelain", 1.5),
    ("Porcelain", 2.5), ("Stone", 1.5), ("Terracotta", 3.0), ("Glass", 2.5), ("Ivory", 1.2),
    ("Steel", 1.5), ("Iron", 1.5), ("Earthenware", 3.0), ("Wood", 2.0),
    # raw variants of the same classes, as found in the real file
    ("silk", 0.4), ("Silk ", 0.3), ("gold", 0.3), (" Bronze", 0.2), ("ETCHING", 0.1),
    ("Etching ", 0.3), ("hard-paste porcelain", 0.3), ("Terracotta ", 0.2), ("wood", 0.2),
    # the long tail
    ("Albumen silver print from glass negative", 3.0), ("Oil on canvas", 3.0),
    ("Ink and color on paper", 2.0), ("Commercial color lithograph", 1.5),
    ("Etching and engraving", 2.0), ("Silk and metallic thread", 1.0), ("Bronze, gold", 0.6),
    ("Silver, gilt", 0.6), ("Tin-glazed earthenware", 0.8), ("Pen and brown ink", 1.5),
    ("Graphite", 1.0), ("Gelatin silver print", 2.0), ("Linen", 0.8), ("Leather", 0.5),
    ("Copper alloy", 0.6), ("Faience", 0.6), ("Jade (nephrite)", 0.4), ("Lacquer", 0.4),
    ("Watercolor", 0.8), ("Hanging scroll; ink and color on silk", 0.8), ("", 1.0),
)

# (raw string, weight). The 15 cultures of MetH-Cultures with their real raw variants,
# then other cultures, then the very common empty culture.
CULTURES: tuple[tuple[str, float], ...] = (
    ("Roman", 3.0), ("Roman, Imperial", 1.0), ("British", 3.0), ("British, London", 1.0),
    ("Coptic", 1.5), ("Etruscan", 1.0), ("Greek", 2.0), ("Greek, Attic", 2.0),
    ("Chinese", 3.0), ("China", 1.5), ("Italian", 2.5), ("Italian, Venice", 0.7),
    ("German", 2.0), ("French", 3.0), ("French, Paris", 1.0), ("Japanese", 2.0), ("Japan", 2.0),
    ("Spanish", 1.0), ("American", 4.0), ("Cypriot", 1.2), ("Dutch", 1.2), ("Indian", 1.0),
    ("roman", 0.1), ("Greek ", 0.1),
    ("Egyptian", 1.5), ("Korea", 0.5), ("Persian", 0.6), ("Flemish", 0.5), ("Mexican", 0.3),
    ("Byzantine", 0.4), ("Peruvian", 0.3), ("Austrian", 0.4), ("", 25.0),
)

# (department, classification options, object names)
DEPARTMENTS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "American Decorative Arts", ("Furniture", "Ceramics", "Silver")),
    (3, "Ancient Near Eastern Art", ("Stone Sculpture", "Metalwork")),
    (4, "Arms and Armor", ("Swords", "Armor for Man", "Firearms")),
    (6, "Asian Art", ("Paintings", "Ceramics", "Textiles-Woven")),
    (9, "Drawings and Prints", ("Prints", "Drawings", "Ornament & Architecture")),
    (10, "Egyptian Art", ("Stone Sculpture", "Jewelry")),
    (11, "European Paintings", ("Paintings",)),
    (12, "European Sculpture and Decorative Arts", ("Ceramics-Porcelain", "Metalwork-Silver", "Sculpture")),
    (13, "Greek and Roman Art", ("Vases", "Terracottas", "Bronzes", "Stone Sculpture", "Gems")),
    (17, "Medieval Art", ("Textiles", "Metalwork", "Ivories")),
    (19, "Photographs", ("Photographs",)),
)

# Department folder codes as used in real image URLs (CRDImages/<code>/original/...).
DEPARTMENT_CODES = {1: "ad", 3: "an", 4: "aa", 6: "as", 9: "dp", 10: "eg", 11: "ep", 12: "es", 13: "gr",
                    17: "md", 19: "ph"}

OBJECT_NAMES = ("Print", "Vase", "Bowl", "Plate", "Statuette", "Coin", "Textile fragment", "Figure",
                "Cup", "Box", "Panel", "Drawing", "Photograph", "Ring", "Sword", "Dish", "Jar")

TITLES = ("Untitled", "Portrait of a Man", "Landscape", "Bowl with Floral Design", "Head of a Youth",
          "Fragment", "Saint Jerome", "View of the Harbor", "Flask", "Plate with Birds",
          "Study of Hands", "Teapot", "Figure of a Horse", "Textile Fragment", "Amphora")

PERIODS = ("", "", "", "Edo period (1615–1868)", "Qing dynasty (1644–1911)", "Archaic", "Classical",
           "Hellenistic", "Imperial", "Byzantine", "Ming dynasty (1368–1644)", "Late Period")
