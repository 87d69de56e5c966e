"""methbuild: build high-resolution, variable-shape image datasets.

The Python API comes first; :mod:`methbuild.cli` is a thin ``click`` layer over it.
"""

__version__ = "0.1.0"
