"""Classical, training-free infrared small target detectors (numpy / scipy, CPU).

>>> from reference_model.classical import get_method
>>> score_map = get_method("mpcm")(image)            # doctest: +SKIP   (H, W) float32

Methods (registry name: function, paper):

- ``tophat``: :func:`white_tophat`, Rivest & Fortin 1996
- ``maxmedian``: :func:`max_median`, Deshpande et al. 1999
- ``lcm``: :func:`lcm`, Chen et al. 2014
- ``mpcm``: :func:`mpcm`, Wei et al. 2016
- ``ipi``: :func:`ipi`, Gao et al. 2013 (RPCA by inexact ALM)

:func:`run_baseline` runs one over a dataset split and writes files ``irstd-bench eval`` reads.
"""

from reference_model.classical._ipi import ipi, patch_image, rpca_inexact_alm
from reference_model.classical._local import lcm, max_median, mpcm, white_tophat
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

__all__ = [
    "METHODS",
    "BaselineRun",
    "ClassicalMethod",
    "adaptive_threshold",
    "get_method",
    "image_to_unit",
    "ipi",
    "lcm",
    "max_median",
    "method_names",
    "mpcm",
    "normalize_score_map",
    "parse_params",
    "patch_image",
    "rpca_inexact_alm",
    "run_baseline",
    "white_tophat",
]
