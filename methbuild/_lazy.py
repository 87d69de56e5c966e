"""Lazy package attributes: a package names what it exports; the module loads on first use.

Worker processes import only the small module a task needs, not every sibling (pandas, pyarrow).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_getattr(package: str, names: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports ``names[name]`` (a module path) and returns its ``name``.

    A lazy name must not equal a submodule's name: once the submodule is imported, the package
    attribute is the submodule and this function is never asked.
    """

    def __getattr__(name: str) -> object:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
