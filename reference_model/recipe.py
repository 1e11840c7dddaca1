"""Training recipes: model options and training hyper-parameters chosen together, by name.

A recipe is what a paper or an authors' code base trains a network with (``--recipe paper``,
``--recipe authors``). It sets the model's builder options and the training settings in one
place, and the run records it. Each model module that has recipes defines them next to the model
as ``RECIPES: Mapping[str, Recipe]`` (a read-only mapping); the registry finds them by the model's
registry name, never by a name read from a file.

``Recipe.train`` keys are :class:`reference_model.engine.trainer.TrainConfig` field names; the
engine refuses a recipe that names a field it does not have, so a recipe can never be silently
half-applied.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from irstd_bench.errors import InputError


def _frozen(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Recipe:
    """A named set of model options and training settings.

    Attributes
    ----------
    name : str
        ``"paper"`` (the paper's text), ``"authors"`` (the authors' released code), ``"fast"``...
    description : str
        One line: where the settings come from (paper section, file of the authors' code).
    model_options : Mapping[str, object]
        Builder keywords of the model (``{"dyhead_blocks": 4, "atfl_lambda": 3.5}``).
    train : Mapping[str, object]
        ``TrainConfig`` fields (``{"epochs": 400, "imgsz": 640, "optimizer": "sgd", "lr": 0.01}``).
    notes : tuple[str, ...]
        Every known difference from the source the recipe follows, one sentence each.
    """

    name: str
    description: str
    model_options: Mapping[str, object] = field(default_factory=dict)
    train: Mapping[str, object] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_options", _frozen(self.model_options))
        object.__setattr__(self, "train", _frozen(self.train))
        object.__setattr__(self, "notes", tuple(self.notes))

    def to_dict(self) -> dict:
        """Plain JSON-able form, recorded in a run's ``args.json`` and checkpoint."""
        return {
            "name": self.name,
            "description": self.description,
            "model_options": dict(self.model_options),
            "train": dict(self.train),
            "notes": list(self.notes),
        }


def recipes_table(*recipes: Recipe) -> Mapping[str, Recipe]:
    """A read-only ``name -> Recipe`` mapping for a model module's ``RECIPES``."""
    table = {}
    for recipe in recipes:
        if recipe.name in table:
            raise ValueError(f"recipe {recipe.name!r} defined twice")
        table[recipe.name] = recipe
    return MappingProxyType(table)


#: ``--recipe`` value asking for the engine's generic defaults instead of the model's default recipe.
NO_RECIPE = "none"
#: Name of a model module's attribute naming the recipe a run uses when none is asked for.
DEFAULT_RECIPE_ATTR = "DEFAULT_RECIPE"


def _model_module(model_name: str):
    """The module that defines a model: the registry's entry, or ``package.module`` of ``module:builder``.

    ``model_name`` comes from the command line or from code, never from a file.
    """
    if ":" in model_name:
        module_name = model_name.partition(":")[0]
    else:
        from reference_model.registry import MODELS

        if model_name not in MODELS:
            raise InputError(f"unknown model {model_name!r} (known: {', '.join(MODELS)})")
        module_name = MODELS[model_name][0]
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"model {model_name!r}: cannot import module {module_name!r} ({exc})") from None


def recipes_for(model_name: str) -> Mapping[str, Recipe]:
    """The ``RECIPES`` of a model's module (empty when it has none).

    ``model_name`` is a registry name (its module is the registry's entry) or
    ``package.module:builder`` (that module); it comes from the command line, never from a file.
    """
    table = getattr(_model_module(model_name), "RECIPES", None)
    return table if isinstance(table, Mapping) else MappingProxyType({})


def default_recipe_name(model_name: str) -> str | None:
    """The recipe a run of ``model_name`` uses when none is asked for (its module's ``DEFAULT_RECIPE``).

    ``None`` when the module names none (or names one its ``RECIPES`` lacks): the engine's defaults.
    """
    module = _model_module(model_name)
    default = getattr(module, DEFAULT_RECIPE_ATTR, None)
    default = getattr(default, "name", default)  # a Recipe object or its name
    return default if isinstance(default, str) and default in recipes_for(model_name) else None


def resolve_recipe_name(model_name: str, requested: str | None) -> str | None:
    """The one rule for which recipe a run uses (``train`` and ``reproduce`` alike).

    ``requested`` is what the user asked for: a recipe name, :data:`NO_RECIPE` (``"none"``: the
    engine's generic defaults) or ``None`` (nothing asked: the model's default recipe, see
    :func:`default_recipe_name`, else the engine's defaults). Returns the recipe name or ``None``.
    """
    if requested == NO_RECIPE:
        return None
    if requested:
        return requested
    return default_recipe_name(model_name)


def find_recipe(model_name: str, name: str) -> Recipe:
    """``RECIPES[name]`` of the model; :class:`InputError` naming the known recipes otherwise."""
    table = recipes_for(model_name)
    if name not in table:
        known = ", ".join(sorted(table)) or "none"
        raise InputError(f"--recipe {name!r}: model {model_name} has no such recipe (known: {known}; "
                         f"{NO_RECIPE!r}: the engine's defaults)")
    return table[name]
