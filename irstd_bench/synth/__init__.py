"""Synthetic SIRST-like data: the embedded default data set of demos and tests.

:func:`generate_sample` writes a data set in the NUDT-SIRST release layout (detected as
``synthetic``, titled "Synthetic sample", by :func:`irstd_bench.datasets.open_dataset`) with
exact masks and a record of every target in ``synth_targets.json``; :func:`generate_image` makes one image in memory.

>>> from irstd_bench.synth import generate_sample
>>> summary = generate_sample("synth_sample", n_images=8, size=64, seed=1)   # doctest: +SKIP
>>> summary.line()                                                           # doctest: +SKIP
"""

from irstd_bench.synth._background import Background, Distractor, fractal_noise, render_background
from irstd_bench.synth._generate import (
    DEFAULT_SCR,
    HALF_SPLIT_FAMILY,
    MASK_RULE,
    RECORD_NAME,
    SCHEMA,
    TRAINING_SPLIT_FAMILY,
    SynthImage,
    SynthSummary,
    SynthTarget,
    generate_image,
    generate_sample,
    is_synth_output,
    parse_scr,
)
from irstd_bench.synth._targets import MASK_FRACTION, SCR_MARGIN_PX, TAIL_CUTOFF

__all__ = [
    "DEFAULT_SCR",
    "HALF_SPLIT_FAMILY",
    "MASK_FRACTION",
    "MASK_RULE",
    "RECORD_NAME",
    "SCHEMA",
    "SCR_MARGIN_PX",
    "TAIL_CUTOFF",
    "TRAINING_SPLIT_FAMILY",
    "Background",
    "Distractor",
    "SynthImage",
    "SynthSummary",
    "SynthTarget",
    "fractal_noise",
    "generate_image",
    "generate_sample",
    "is_synth_output",
    "parse_scr",
    "render_background",
]
