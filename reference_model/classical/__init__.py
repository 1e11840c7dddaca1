"""Classical, training-free infrared small target detectors (numpy / scipy, CPU).

>>> from reference_model.classical import get_method
>>> score_map = get_method("mpcm")(image)            # doctest: +SKIP   (H, W) float32

Methods (registry name: function, paper):

- ``tophat``: :func:`white_tophat`, Rivest & Fortin 1996
- ``maxmedian``: :func:`max_median`, Deshpande et al. 1999
- ``lcm``: :func:`lcm`, Chen et al. 2014
- ``mpcm``: :func:`mpcm`, Wei et al. 2016
- ``ipi``: :func:`ipi`, Gao et al. 2013 (RPCA by inexact ALM)
- ``ilcm``, ``rlcm``, ``tllcm``, ``wslcm``: :mod:`._contrast`, Han et al. 2014, 2018, 2020, 2021
- ``tdlms``: :func:`tdlms`, Hadhoud & Thomas 1988 / Cao et al. 2008 (adaptive 2-D LMS prediction)
- ``nram``: :func:`nram`, Zhang et al. 2018 (non-convex rank + l2,1, ADMM)
- ``ript``, ``pstnn``: :mod:`._tensor`, Dai & Wu 2017, Zhang & Peng 2019 (patch tensors)

Deviations from the papers and the authors' code: each module's docstring and
``docs/models/classical.md``.

:func:`run_baseline` runs one over a dataset split and writes files ``irstd-bench eval`` reads.
"""

from reference_model.classical._contrast import ilcm, rlcm, tllcm, wslcm
from reference_model.classical._ipi import ipi, patch_image, rpca_inexact_alm
from reference_model.classical._local import lcm, max_median, mpcm, white_tophat
from reference_model.classical._nram import nram
from reference_model.classical._registry import (
    METHODS,
    ClassicalMethod,
    get_method,
    method_names,
    parse_params,
)
from reference_model.classical._runner import (
    BaselineRun,
    adaptive_threshold,
    image_to_unit,
    normalize_score_map,
    run_baseline,
)
from reference_model.classical._tdlms import tdlms
from reference_model.classical._tensor import pstnn, ript

__all__ = [
    "METHODS",
    "BaselineRun",
    "ClassicalMethod",
    "adaptive_threshold",
    "get_method",
    "ilcm",
    "image_to_unit",
    "ipi",
    "lcm",
    "max_median",
    "method_names",
    "mpcm",
    "normalize_score_map",
    "nram",
    "parse_params",
    "patch_image",
    "pstnn",
    "ript",
    "rlcm",
    "rpca_inexact_alm",
    "run_baseline",
    "tdlms",
    "tllcm",
    "white_tophat",
    "wslcm",
]
