"""Size and aspect-ratio statistics of image collections (paper 000, Figure 2 and Table 1).

- :func:`methbuild.stats.inputs.read_sizes`: the header sizes of one folder or manifest (seeded sample).
- :func:`methbuild.stats.collect.collect`: several inputs → images.parquet, summary.csv, figure, overlap.csv.
- :mod:`methbuild.stats.headers`: the fast header reader (Pillow decides whatever it cannot parse).

The names are loaded lazily: worker processes import only :mod:`methbuild.stats.headers`
(no pandas, no numpy), which keeps a process pool's start-up short.
"""

from __future__ import annotations

from methbuild._lazy import lazy_getattr

_LAZY = {
    "DEFAULT_SAMPLE": "methbuild.stats.collect",
    "StatsReport": "methbuild.stats.collect",
    "summarize": "methbuild.stats.collect",
    "list_images": "methbuild.stats.inputs",
    "read_manifest": "methbuild.stats.inputs",
    "read_sizes": "methbuild.stats.inputs",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr("methbuild.stats", _LAZY)
