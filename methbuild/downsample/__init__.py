"""Downsampled ImageNet (paper 004, SPEC §5): ImageNet16x16 / 32x32 / 64x64 in the published batch format.

``scan`` lists the source tree, ``square`` resizes one image, ``build`` runs the whole job.
"""

from methbuild.downsample.build import Options, build, train_order
from methbuild.downsample.resize import METHODS, SIZES, square, to_row
from methbuild.downsample.source import read_synsets, scan

__all__ = ["METHODS", "SIZES", "Options", "build", "read_synsets", "scan", "square", "to_row", "train_order"]
