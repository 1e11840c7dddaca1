"""The run plan of ``irstd-bench reproduce``: which methods, recipes and seeds, in which order.

The plan is data (:data:`DEFAULT_PLAN`, a tuple of :class:`RunSpec`), never read from a file.
:func:`resolve_plan` turns it into :class:`RunUnit` objects (one training each) against what the
installed code offers at run time: a spec whose model is not in the registry, or whose recipe its
model module does not define, is left out with the reason, so the plan can name networks that
other parts of the code base add later.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from reference_model.recipe import default_recipe_name

#: Title of each registry model in tables (the registry key where absent).
METHOD_TITLES = MappingProxyType(
    {
        "eflnet-yolov7": "EFLNet-YOLOv7",
        "eflnet-n": "EFLNet-n",
        "eflnet-s": "EFLNet-s",
        "eflnet-m": "EFLNet-m",
        "eflnet-l": "EFLNet-l",
        "acm": "ACM",
        "alcnet": "ALCNet",
        "dnanet": "DNANet",
        "mdvsfa": "MDvsFA",
        "agpcnet": "AGPCNet",
        "isnet": "ISNet",
        "mshnet": "MSHNet",
    }
)
#: Run folder label of a run without a recipe.
NO_RECIPE_LABEL = "default"


@dataclass(frozen=True)
class RunSpec:
    """One line of the plan: a registry model trained with one recipe, for some seeds.

    Attributes
    ----------
    model : str
        Registry key (``reference_model.registry.MODELS``), e.g. ``"eflnet-yolov7"``.
    recipe : str or None
        Key of the model module's ``RECIPES``; ``None``: the module's ``DEFAULT_RECIPE`` if it
        names one, else the engine's defaults (no ``--recipe``).
    seeds : tuple of int
        One training per seed.
    priority : int
        Lower runs first and is dropped last when the time budget is short.
    extra_seed_priority : int or None
        Priority of the seeds after the first (``None``: ``priority``), so that extra seeds can
        give way to other methods.
    """

    model: str
    recipe: str | None = None
    seeds: tuple[int, ...] = (0,)
    priority: int = 0
    extra_seed_priority: int | None = None
    epochs: int | None = None

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError(f"run spec {self.model}: no seeds")
        if self.epochs is not None and int(self.epochs) < 1:
            raise ValueError(f"run spec {self.model}: epochs {self.epochs} < 1")
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))


#: Table I of the EFLNet paper on NUAA-SIRST: the authors' EFLNet under both recipes (3 seeds
#: each where the budget allows; the first seeds of both come first), the fast EFLNet-s, and the
#: segmentation baselines with their own papers' recipes (their modules' defaults).
DEFAULT_PLAN: tuple[RunSpec, ...] = (
    RunSpec("eflnet-yolov7", "authors", seeds=(0, 1, 2), priority=0, extra_seed_priority=6),
    RunSpec("eflnet-yolov7", "paper", seeds=(0, 1, 2), priority=1, extra_seed_priority=7),
    RunSpec("dnanet", priority=2),
    RunSpec("acm", priority=3),
    RunSpec("alcnet", priority=4),
    RunSpec("eflnet-s", priority=5),
    RunSpec("mshnet", priority=8),
    RunSpec("isnet", priority=9),
    RunSpec("agpcnet", priority=10),
    RunSpec("mdvsfa", priority=11),
)


@dataclass(frozen=True)
class RunUnit:
    """One training of the plan: model, recipe (resolved), seed and priority.

    ``recipe_train`` holds the recipe's training settings (``TrainConfig`` field names), from
    which the full schedule (``epochs``) and warm-up are read.
    """

    model: str
    recipe: str | None
    seed: int
    priority: int
    order: int
    recipe_train: Mapping[str, object] = field(default_factory=dict)

    @property
    def config_key(self) -> str:
        """``model/recipe``: runs that differ only by seed share it (and one timing probe)."""
        return f"{self.model}/{self.recipe or NO_RECIPE_LABEL}"

    @property
    def run_id(self) -> str:
        """Folder name of the run, e.g. ``eflnet-yolov7-authors-s0``."""
        return f"{self.model}-{self.recipe or NO_RECIPE_LABEL}-s{self.seed}"

    @property
    def family(self) -> str:
        """Method name without the seed: ``EFLNet-YOLOv7 authors``, ``ACM``."""
        title = METHOD_TITLES.get(self.model, self.model)
        return f"{title} {self.recipe}" if self.recipe else title

    @property
    def method(self) -> str:
        """Method name in results and tables: ``EFLNet-YOLOv7 authors (seed 0)``."""
        return f"{self.family} (seed {self.seed})"


@dataclass(frozen=True)
class LeftOut:
    """A plan entry that does not run, and why (one sentence)."""

    model: str
    recipe: str | None
    seeds: tuple[int, ...]
    reason: str

    @property
    def label(self) -> str:
        seeds = ",".join(str(s) for s in self.seeds)
        return f"{self.model} / {self.recipe or NO_RECIPE_LABEL} / seeds {seeds}"


@dataclass(frozen=True)
class ModelInfo:
    """What the installed code offers for one registry model: its recipes and default recipe."""

    recipes: Mapping[str, Mapping[str, object]]
    default_recipe: str | None = None


def registry_models() -> dict[str, ModelInfo]:
    """Every registered model with its module's ``RECIPES`` (training settings by recipe name).

    Module names come from :data:`reference_model.registry.MODELS` (code, not a file). A module
    that fails to import is reported as absent by :func:`resolve_plan` through a missing entry.
    """
    from reference_model.registry import MODELS

    out: dict[str, ModelInfo] = {}
    for name, entry in MODELS.items():
        try:
            module = importlib.import_module(entry[0])
        except ImportError:
            continue
        table = getattr(module, "RECIPES", None)
        recipes = {}
        if isinstance(table, Mapping):
            recipes = {key: dict(getattr(recipe, "train", {}) or {}) for key, recipe in table.items()}
        # The one rule of train and reproduce: the module's DEFAULT_RECIPE where it names one of RECIPES.
        out[name] = ModelInfo(recipes=recipes, default_recipe=default_recipe_name(name))
    return out


def resolve_plan(
    plan: Sequence[RunSpec],
    models: Mapping[str, ModelInfo],
    *,
    max_seeds: int | None = None,
    only: Callable[[str], bool] | None = None,
    train_has_recipe: bool = True,
) -> tuple[list[RunUnit], list[LeftOut]]:
    """The runnable trainings of ``plan`` and the entries left out, with reasons.

    Parameters
    ----------
    plan : sequence of RunSpec
    models : mapping
        Registry key -> :class:`ModelInfo` (:func:`registry_models` at run time; a literal in tests).
    max_seeds : int, optional
        Keep at most this many seeds of each spec (``--max-seeds``); the others are left out.
    only : callable, optional
        ``only(model)`` false: the spec is left out (``--only``).
    train_has_recipe : bool
        Whether ``irstd-bench train`` has ``--recipe``; without it a spec naming a recipe is left
        out and a module's default recipe is not applied.

    Returns
    -------
    units : list of RunUnit
        Sorted by priority, then plan order (the order in which runs are dropped is the reverse).
    left_out : list of LeftOut
    """
    units: list[RunUnit] = []
    left_out: list[LeftOut] = []
    order = 0
    for spec in plan:
        if only is not None and not only(spec.model):
            left_out.append(LeftOut(spec.model, spec.recipe, spec.seeds, "not selected (--only)"))
            continue
        info = models.get(spec.model)
        if info is None:
            left_out.append(LeftOut(spec.model, spec.recipe, spec.seeds, "model not in the registry"))
            continue
        recipe = spec.recipe if spec.recipe is not None else info.default_recipe
        if recipe is not None and not train_has_recipe:
            if spec.recipe is not None:
                left_out.append(LeftOut(spec.model, recipe, spec.seeds, "irstd-bench train has no --recipe option"))
                continue
            recipe = None
        if recipe is not None and recipe not in info.recipes:
            known = ", ".join(sorted(info.recipes)) or "none"
            left_out.append(
                LeftOut(spec.model, recipe, spec.seeds, f"model has no recipe {recipe!r} (its recipes: {known})")
            )
            continue
        seeds = spec.seeds if max_seeds is None else spec.seeds[:max_seeds]
        if len(seeds) < len(spec.seeds):
            left_out.append(LeftOut(spec.model, recipe, spec.seeds[len(seeds) :], f"--max-seeds {max_seeds}"))
        train = dict(info.recipes.get(recipe, {})) if recipe else {}
        if spec.epochs is not None:
            train["epochs"] = int(spec.epochs)
        train = MappingProxyType(train)
        for i, seed in enumerate(seeds):
            priority = spec.priority if i == 0 or spec.extra_seed_priority is None else spec.extra_seed_priority
            units.append(RunUnit(spec.model, recipe, seed, priority, order, train))
            order += 1
    units.sort(key=lambda u: (u.priority, u.order))
    return units, left_out
