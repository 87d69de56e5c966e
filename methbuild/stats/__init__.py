"""Size and aspect-ratio statistics of image collections (paper 000, Figure 2 and Table 1).

- :func:`methbuild.stats.inputs.read_sizes`: the header sizes of one folder or manifest (seeded sample).
- :func:`methbuild.stats.collect.collect`: several inputs → images.parquet, summary.csv, figure, overlap.csv.
- :mod:`methbuild.stats.headers`: the fast header reader (Pillow decides whatever it cannot parse).
"""

from methbuild.stats.collect import DEFAULT_SAMPLE, StatsReport, collect, summarize
from methbuild.stats.inputs import list_images, read_manifest, read_sizes

__all__ = ["DEFAULT_SAMPLE", "StatsReport", "collect", "list_images", "read_manifest", "read_sizes", "summarize"]
