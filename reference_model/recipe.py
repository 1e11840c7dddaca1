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


def recipes_for(model_name: str) -> Mapping[str, Recipe]:
    """The ``RECIPES`` of a model's module (empty when it has none).

    ``model_name`` is a registry name (its module is the registry's entry) or
    ``package.module:builder`` (that module); it comes from the command line, never from a file.
    """
    if ":" in model_name:
        module_name = model_name.partition(":")[0]
    else:
        from reference_model.registry import MODELS

        if model_name not in MODELS:
            raise InputError(f"unknown model {model_name!r} (known: {', '.join(MODELS)})")
        module_name = MODELS[model_name][0]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"model {model_name!r}: cannot import module {module_name!r} ({exc})") from None
    table = getattr(module, "RECIPES", None)
    return table if isinstance(table, Mapping) else MappingProxyType({})


def find_recipe(model_name: str, name: str) -> Recipe:
    """``RECIPES[name]`` of the model; :class:`InputError` naming the known recipes otherwise."""
    table = recipes_for(model_name)
    if name not in table:
        known = ", ".join(sorted(table)) or "none"
        raise InputError(f"--recipe {name!r}: model {model_name} has no such recipe (known: {known})")
    return table[name]
