"""Training protocols: what a comparison changes in every method's recipe, by name.

A recipe says how one network's authors train it; a *protocol* says what a comparison changes in
all of them at once so that it fits the machine it runs on (``--protocol NAME`` of ``train`` and
``reproduce``). Its settings are ``TrainConfig`` fields applied over the recipe (an option given
on the command line still wins), and the run records the protocol's name in ``args.json`` and its
checkpoints, so that every table built from the run can say under which protocol it was trained.

Protocols are code (:data:`PROTOCOLS`), never read from a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from irstd_bench.errors import InputError


@dataclass(frozen=True)
class Protocol:
    """A named change applied to every run of a comparison.

    Attributes
    ----------
    name : str
        ``cpu-windows-256``...
    title : str
        Short form for table titles.
    description : str
        What it changes and why (the evidence it was chosen with is in ``reports/*/RUNS.md``).
    window : int or None
        Training input side, px: random ``window`` x ``window`` windows are cut from the recipe's
        own canvas (its ``base_size``, else its ``imgsz``), and validation and prediction run on
        that whole canvas (``eval_size``). Targets keep the size the authors train and test them
        at; only the training crop shrinks, so the cost of an epoch is about the same for every
        method. ``None``: the recipe's sizes as they are.
    """

    name: str
    title: str
    description: str
    window: int | None = None

    def settings(self, recipe_values: Mapping[str, object]) -> dict:
        """``TrainConfig`` settings this protocol sets, given the run's values before it.

        ``recipe_values`` maps ``imgsz`` and ``base_size`` to the values the recipe (or the
        engine's defaults) gives the run.
        """
        if self.window is None:
            return {}
        canvas = int(recipe_values.get("base_size") or recipe_values["imgsz"])
        return {"imgsz": min(self.window, canvas), "base_size": canvas, "eval_size": canvas}

    def to_dict(self) -> dict:
        """Plain JSON-able form (``summary.json``)."""
        return {"name": self.name, "title": self.title, "description": self.description, "window": self.window}


def _table(*protocols: Protocol) -> Mapping[str, Protocol]:
    return MappingProxyType({p.name: p for p in protocols})


#: Every protocol, by name.
PROTOCOLS: Mapping[str, Protocol] = _table(
    Protocol(
        name="cpu-windows-256",
        title="CPU protocol: authors' recipes, 256-px training windows of the authors' canvas",
        description=(
            "Each network's default (authors') recipe and full schedule; training windows of 256 px cut "
            "from the recipe's own canvas (ACM/ALCNet 512, DNANet/MSHNet 256, EFLNet 640...) instead of its "
            "480-640 px crops, validation and prediction on that canvas as the authors test. Targets keep "
            "the authors' scale; an epoch costs about the same for every method, so the comparison fits a "
            "2-core CPU. Shrinking the canvas to 256 instead keeps ACM's recipe on its soft-IoU plateau."
        ),
        window=256,
    ),
    Protocol(
        name="authors-sizes",
        title="authors' recipes at the authors' input sizes",
        description="Each network's default (authors') recipe as it is: full schedule, the authors' input sizes.",
        window=None,
    ),
)


def find_protocol(name: str) -> Protocol:
    """``PROTOCOLS[name]``; :class:`InputError` naming the known protocols otherwise."""
    if name not in PROTOCOLS:
        raise InputError(f"--protocol {name!r}: no such protocol (known: {', '.join(PROTOCOLS)})")
    return PROTOCOLS[name]
