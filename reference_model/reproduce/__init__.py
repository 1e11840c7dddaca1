"""``irstd-bench reproduce``: Table I of the EFLNet paper on one device, inside one time budget.

>>> from reference_model.reproduce import ReproduceConfig, reproduce              # doctest: +SKIP
>>> outcome = reproduce(ReproduceConfig(out=Path("repro"), root=Path("NUAA-SIRST"), dataset="nuaa",
...                                     family="split_EFLNet", budget_s=510, device="cuda"))  # doctest: +SKIP

The run plan is data (:data:`DEFAULT_PLAN`); what the installed registry and recipes do not
offer is left out, with the reason, in ``RUNS.md``.
"""

from ._budget import SMOKE_PHASES, PhaseBudget, Probe, allocate, scaled_warmup
from ._pack import MAX_FILE_BYTES, MAX_FILES, PackResult
from ._plan import DEFAULT_PLAN, LeftOut, ModelInfo, RunSpec, RunUnit, registry_models, resolve_plan
from ._run import ReproduceConfig, reproduce

__all__ = [
    "DEFAULT_PLAN",
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "SMOKE_PHASES",
    "LeftOut",
    "ModelInfo",
    "PackResult",
    "PhaseBudget",
    "Probe",
    "ReproduceConfig",
    "RunSpec",
    "RunUnit",
    "allocate",
    "registry_models",
    "reproduce",
    "resolve_plan",
    "scaled_warmup",
]
