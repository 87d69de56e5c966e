"""The MetH recipes: one small declarative module per dataset.

Every module in this folder that defines a :class:`methbuild.recipe.Recipe` subclass with a
``name`` registers it; adding a dataset is adding one file here.
"""

from __future__ import annotations

import importlib
import pkgutil

from methbuild.errors import UserError
from methbuild.recipe import Recipe


def _load_all() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def all_recipes() -> dict[str, type[Recipe]]:
    _load_all()
    return dict(sorted(Recipe.registry.items()))


def get(name: str, seed: int | None = None) -> Recipe:
    recipes = all_recipes()
    if name not in recipes:
        raise UserError(f"unknown recipe {name!r}; known: {', '.join(recipes)}")
    return recipes[name](seed=seed)
