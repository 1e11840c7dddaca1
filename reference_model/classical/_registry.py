"""Registry of the classical methods: name -> function and its documented parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from irstd_bench.errors import InputError
from reference_model.classical._contrast import ilcm, rlcm, tllcm, wslcm
from reference_model.classical._ipi import ipi
from reference_model.classical._local import lcm, max_median, mpcm, white_tophat
from reference_model.classical._nram import nram
from reference_model.classical._tdlms import tdlms
from reference_model.classical._tensor import pstnn, ript


@dataclass(frozen=True)
class ClassicalMethod:
    """A training-free detector.

    Attributes
    ----------
    name : str
        Registry name (``irstd-bench baseline NAME``).
    function : callable
        ``function(image (H, W), **params) -> score_map (H, W) float32``.
    defaults : dict
        Parameter names and default values; only these can be overridden.
    reference : str
        The paper.
    """

    name: str
    function: Callable[..., np.ndarray]
    defaults: dict = field(default_factory=dict)
    reference: str = ""

    def check_params(self, params: dict) -> None:
        """Raise :class:`InputError` for parameter names the method does not have."""
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise InputError(
                f"unknown parameter(s) {', '.join(unknown)} for method {self.name!r} "
                f"(known: {', '.join(self.defaults) or 'none'})"
            )

    def __call__(self, image: np.ndarray, **params) -> np.ndarray:
        self.check_params(params)
        return self.function(image, **{**self.defaults, **params})


METHODS: dict[str, ClassicalMethod] = {
    m.name: m
    for m in (
        ClassicalMethod("tophat", white_tophat, {"radius": 4}, "Rivest & Fortin, Opt. Eng. 1996"),
        ClassicalMethod("maxmedian", max_median, {"size": 11}, "Deshpande et al., SPIE 3809, 1999"),
        ClassicalMethod("lcm", lcm, {"scales": (3, 5, 7, 9)}, "Chen et al., IEEE TGRS 2014"),
        ClassicalMethod(
            "mpcm", mpcm, {"scales": (3, 5, 7, 9), "smooth": 3}, "Wei et al., Pattern Recognit. 2016"
        ),
        ClassicalMethod(
            "ipi",
            ipi,
            {"patch": 30, "stride": 14, "lambda_scale": 1.0, "tol": 1e-5, "max_iter": 100},
            "Gao et al., IEEE TIP 2013",
        ),
        ClassicalMethod("ilcm", ilcm, {"block": 8}, "Han et al., IEEE GRSL 2014"),
        ClassicalMethod(
            "rlcm", rlcm, {"scales": (3, 5, 7), "k1": (2, 5, 9), "k2": (4, 9, 16)}, "Han et al., IEEE GRSL 2018"
        ),
        ClassicalMethod("tllcm", tllcm, {"scales": (9,), "k": 9}, "Han et al., IEEE GRSL 2020"),
        ClassicalMethod(
            "wslcm", wslcm, {"scales": (5, 7, 9, 11), "k": 9, "xi": 5.0}, "Han et al., IEEE GRSL 2021"
        ),
        ClassicalMethod(
            "tdlms", tdlms, {"support": 5, "mu": 0.05, "passes": 2}, "Hadhoud & Thomas 1988; Cao et al. 2008"
        ),
        ClassicalMethod(
            "nram",
            nram,
            {"patch": 50, "step": 10, "gamma": 2e-3, "tol": 1e-7, "max_iter": 300},
            "Zhang et al., Remote Sens. 2018",
        ),
        ClassicalMethod(
            "ript",
            ript,
            {"patch": 30, "step": 10, "lambda_l": 1.0, "h": 1.0, "tol": 1e-7, "max_iter": 100},
            "Dai & Wu, IEEE JSTARS 2017",
        ),
        ClassicalMethod(
            "pstnn",
            pstnn,
            {"patch": 40, "step": 40, "lambda_l": 0.6, "tol": 1e-7, "max_iter": 500},
            "Zhang & Peng, Remote Sens. 2019",
        ),
    )
}


def method_names() -> list[str]:
    return list(METHODS)


def get_method(name: str) -> ClassicalMethod:
    """The registered method ``name`` (case-insensitive); raises :class:`InputError` if unknown."""
    key = str(name).lower()
    if key not in METHODS:
        raise InputError(f"unknown classical method {name!r} (known: {', '.join(METHODS)})")
    return METHODS[key]


def parse_params(method: ClassicalMethod, items: list[str] | tuple[str, ...]) -> dict:
    """Parse ``NAME=VALUE`` strings (``radius=5``, ``scales=3,5,7``) into typed parameters.

    The type follows the default: int, float, or a tuple of ints for comma lists.
    """
    params = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--param {item!r}: expected NAME=VALUE")
        key, value = (s.strip() for s in item.split("=", 1))
        if key not in method.defaults:
            raise InputError(
                f"--param {key!r}: unknown parameter for {method.name} (known: {', '.join(method.defaults)})"
            )
        default = method.defaults[key]
        try:
            if isinstance(default, tuple):
                params[key] = tuple(int(v) for v in value.split(",") if v.strip())
            elif isinstance(default, int):
                params[key] = int(value)
            else:
                params[key] = float(value)
        except ValueError:
            raise InputError(f"--param {key}={value!r}: not a valid {type(default).__name__}") from None
    return params
