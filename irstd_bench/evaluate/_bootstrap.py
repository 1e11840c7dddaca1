"""Bootstrap over images: intervals of a split's metrics and paired differences between runs.

The unit is the image, the unit a test split samples: a resample draws ``N`` images with
replacement from the split's ``N``; each image's numbers (:class:`PerImageData`) enter with its
multiplicity ``w`` (how often it was drawn), so a resample's metric is the metric of the split
made of those images. Nothing is matched again: counts are weighted sums, and AP50 ranks the
split's candidates once by score and accumulates the weights (:func:`resampled_ap`).

Intervals are percentile intervals (the 2.5th and 97.5th percentiles of the resampled values,
``numpy.percentile``'s linear rule). A resample where a metric is undefined (precision of a
resample without predictions) is left out of that metric's interval.

A paired comparison of two runs on the same images uses the same resamples for both
(:func:`paired_difference`): its interval is that of the resampled differences, and its
two-sided p-value

    p = min(1, 2 * min((1 + #{d <= 0}) / (B + 1), (1 + #{d >= 0}) / (B + 1)))

over the ``B`` resampled differences ``d`` (the smallest level at which the percentile interval
of the difference excludes 0, with the +1 correction of a Monte-Carlo p-value): identical runs
give ``p = 1``; a run better on every resample ``p = 2 / (B + 1)``.

Determinism: the draws come from ``numpy.random.Generator(PCG64(seed))`` in fixed chunks of
:data:`CHUNK_RESAMPLES`; counts are summed as whole numbers (exact in int64 and float64, in any
order, whatever BLAS and its threads do); the only sum of fractions (nIoU) runs along one axis of
one array (numpy's pairwise sum, no threads). The same seed gives the same interval on any machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import sparse

from irstd_bench.errors import InputError
from irstd_bench.evaluate._metrics import interpolated_precision, prf, ratio
from irstd_bench.evaluate._per_image import PerImageData

#: Resamples by default (``eval --bootstrap``, ``compare``, ``report``).
DEFAULT_RESAMPLES = 2000
#: Most resamples a bootstrap may ask for (``--bootstrap``): 50 times the default, far more than a
#: percentile interval's third digit needs, and low enough that a typo (``--bootstrap 1e12``) is
#: refused in one line instead of exhausting memory.
MAX_RESAMPLES = 100_000
#: Most multiplicities held at once (``resamples x images`` int64: 2 GiB); a larger bootstrap is
#: refused before it allocates.
MAX_RESAMPLE_CELLS = 2**28
#: Seed by default (``--bootstrap-seed``).
DEFAULT_SEED = 0
#: Coverage of the intervals (``metrics.ci95``).
LEVEL = 0.95
#: Resamples drawn and scored together: bounds memory (a chunk is ``CHUNK_RESAMPLES x N`` counts)
#: and fixes the order of the draws, so the stream does not depend on the machine.
CHUNK_RESAMPLES = 250
#: Metrics with an interval, in the order of ``metrics.ci95``.
INTERVAL_METRICS = ("precision", "recall", "f1", "ap50", "iou", "niou", "pd", "fa_e6")
#: Fa is per million pixels (as :data:`irstd_bench.evaluate._summary.PER_MILLION`).
PER_MILLION = 1e6


@dataclass(frozen=True)
class BootstrapSettings:
    """How intervals are computed (``settings.bootstrap`` of the results JSON).

    ``resamples`` 0 turns the bootstrap off.
    """

    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    unit: str = "image"
    method: str = "percentile"
    level: float = LEVEL

    def __post_init__(self) -> None:
        for name in ("resamples", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise InputError(f"bootstrap {name} must be a whole number >= 0, got {value!r}")
        if self.resamples > MAX_RESAMPLES:
            raise InputError(f"--bootstrap {self.resamples}: at most {MAX_RESAMPLES} resamples")

    def to_dict(self) -> dict:
        return asdict(self)


def resample_counts(n_images: int, resamples: int, seed: int) -> np.ndarray:
    """How often each image is drawn in each resample.

    Returns
    -------
    ndarray (resamples, n_images) int64
        Row ``b``: the multiplicities of resample ``b`` (each row sums to ``n_images``). Rows
        come in chunks of :data:`CHUNK_RESAMPLES`, each from one ``Generator.integers`` call.

    Raises
    ------
    InputError
        More than :data:`MAX_RESAMPLES` resamples, or more than :data:`MAX_RESAMPLE_CELLS`
        multiplicities in all (checked before anything is allocated).
    """
    BootstrapSettings(resamples, seed)
    if resamples * n_images > MAX_RESAMPLE_CELLS:
        raise InputError(
            f"--bootstrap {resamples} over {n_images} images: {resamples * n_images} multiplicities exceed "
            f"{MAX_RESAMPLE_CELLS}; use at most {MAX_RESAMPLE_CELLS // max(1, n_images)} resamples"
        )
    rng = np.random.Generator(np.random.PCG64(seed))
    out = np.zeros((resamples, n_images), np.int64)
    if n_images == 0:
        return out
    for start in range(0, resamples, CHUNK_RESAMPLES):
        rows = min(CHUNK_RESAMPLES, resamples - start)
        draws = rng.integers(0, n_images, size=(rows, n_images))
        flat = (draws + n_images * np.arange(rows)[:, None]).ravel()
        out[start : start + rows] = np.bincount(flat, minlength=rows * n_images).reshape(rows, n_images)
    return out


def resampled_ap(data: PerImageData, weights: np.ndarray) -> np.ndarray:
    """AP50 of each resample, as :func:`~irstd_bench.evaluate.coco_average_precision` of the
    resample's images (each image's candidates repeated by its multiplicity).

    The candidates are ranked once (decreasing score; ties in image order, then each image's
    order, as for the split). Precision can rise only at a hit, so the interpolated precision
    needs the ranking only at the hits: there, true positives are the cumulative weights of the
    hits and false positives those of the misses ranked before, ``weights @ G`` with ``G`` (N, H)
    the misses of each image between consecutive hits (sparse). Copies of one candidate are
    ranked together.

    Parameters
    ----------
    weights : ndarray (B, N) int
        Multiplicities (:func:`resample_counts`; a row of ones: the split itself).

    Returns
    -------
    ndarray (B,) float64
        NaN where a resample has no ground truth.
    """
    n_images = len(data)
    scores, hits, image = data.ap_scores, data.ap50_hits, data.candidate_image
    order = np.argsort(-scores, kind="mergesort")
    hits, image = hits[order], image[order]
    hit_at = np.flatnonzero(hits)
    miss_at = np.flatnonzero(~hits)
    hits_before = np.searchsorted(hit_at, miss_at)  # a miss counts against every later hit
    counted = hits_before < len(hit_at)
    misses = sparse.csr_matrix(
        (np.ones(int(counted.sum())), (image[miss_at[counted]], hits_before[counted])),
        shape=(n_images, len(hit_at)),
    )  # duplicates are summed: misses of each image before each hit (after the previous one)
    hit_image = image[hit_at]
    gt = np.asarray(weights, np.int64) @ data.gt
    out = np.full(len(weights), np.nan)
    for start in range(0, len(weights), CHUNK_RESAMPLES):
        w = np.asarray(weights[start : start + CHUNK_RESAMPLES], np.float64)
        tps = np.cumsum(w[:, hit_image], axis=1)  # whole numbers: exact
        fps = np.cumsum(np.asarray((misses.T @ w.T).T), axis=1)
        n_gt = gt[start : start + len(w)]
        defined = n_gt > 0
        out[start : start + len(w)][defined] = interpolated_precision(tps[defined], fps[defined], n_gt[defined])
    return out


def metric_samples(data: PerImageData, weights: np.ndarray, metrics: Sequence[str] = INTERVAL_METRICS) -> dict:
    """Each metric of ``metrics`` that ``data`` can give, for each resample of ``weights``.

    Parameters
    ----------
    weights : ndarray (B, N) int
        Multiplicities of the images (:func:`resample_counts`).

    Returns
    -------
    dict of str to ndarray (B,) float64
        NaN where undefined in a resample. Pixel metrics only with ``data.pixels``, ``ap50`` only
        with AP candidates. With a row of ones, the split's own metrics (nIoU to rounding).
    """
    w = np.asarray(weights, np.int64)
    tp, pred, gt = w @ data.tp, w @ data.pred, w @ data.gt
    out = dict(prf(tp, pred, gt))
    if "ap50" in metrics and data.has_ap50:
        out["ap50"] = resampled_ap(data, w)
    if data.pixels is not None:
        px = data.pixels
        image_iou = ratio(px["intersection"], px["union"])
        defined = ~np.isnan(image_iou)
        out["iou"] = ratio(w @ px["intersection"], w @ px["union"])
        out["niou"] = ratio((w * np.where(defined, image_iou, 0.0)).sum(axis=1), w @ defined.astype(np.int64))
        out["pd"] = ratio(w @ px["pd_matched"], gt)
        out["fa_e6"] = ratio(PER_MILLION * (w @ px["fa_px"]), w @ px["total_px"])
    return {k: v for k, v in out.items() if k in metrics}


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """The percentile interval ``[lo, hi]`` of the defined (finite) ``values``; ``None`` if none."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]


def bootstrap_intervals(data: PerImageData, metrics: dict, settings: BootstrapSettings) -> dict:
    """``metrics.ci95``: the interval of each metric of :data:`INTERVAL_METRICS` that ``metrics``
    has (not ``None``) and ``data`` can resample; ``None`` for the others."""
    wanted = [m for m in INTERVAL_METRICS if metrics.get(m) is not None]
    samples = metric_samples(data, resample_counts(len(data), settings.resamples, settings.seed), wanted)
    return {m: percentile_interval(samples[m], settings.level) if m in samples else None for m in INTERVAL_METRICS}


@dataclass(frozen=True)
class PairedDifference:
    """``b - a`` of one metric over the same resampled images.

    ``difference`` is that of the split itself; ``interval`` the percentile interval of the
    resampled differences; ``p_value`` two-sided (module docstring); ``resamples`` those where
    both are defined.
    """

    difference: float | None
    interval: list[float] | None
    p_value: float | None
    resamples: int

    def to_dict(self) -> dict:
        return asdict(self)


def paired_difference(
    a: np.ndarray, b: np.ndarray, observed: float | None = None, level: float = LEVEL
) -> PairedDifference:
    """The paired bootstrap of ``b - a`` from their values on the same resamples (B,)."""
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return PairedDifference(observed, None, None, 0)
    below, above = int(np.count_nonzero(d <= 0)), int(np.count_nonzero(d >= 0))
    p = min(1.0, 2 * min(below + 1, above + 1) / (d.size + 1))
    return PairedDifference(observed, percentile_interval(d, level), p, int(d.size))
