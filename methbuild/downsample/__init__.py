"""Downsampled ImageNet (paper 004, SPEC §5): ImageNet16x16 / 32x32 / 64x64 in the published batch format.

``scan`` lists the source tree, ``square`` resizes one image, ``build`` runs the whole job.
Names load lazily: a pool worker unpickling ``resize.downsample_chunk`` imports Pillow and
NumPy only, not the driver's dependencies (tqdm, the io package and its pandas).
"""

from __future__ import annotations

import importlib

_WHERE = {
    "Options": "pipeline", "build": "pipeline", "train_order": "pipeline",
    "METHODS": "resize", "SIZES": "resize", "square": "resize", "to_row": "resize",
    "read_synsets": "source", "scan": "source",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
