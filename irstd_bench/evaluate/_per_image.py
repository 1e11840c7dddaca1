"""What a split's metrics are made of, image by image: the bootstrap's input.

:class:`PerImageData` holds, for each image of a split, the counts at the run's threshold
(targets, kept predictions, matches), the pixel statistics (maps against masks) and the scored
AP50 candidates. Every metric of the results (P, R, F1, AP50, IoU, nIoU, Pd, Fa) is a function of
these numbers summed over images, so resampling images (:mod:`irstd_bench.evaluate._bootstrap`)
re-matches nothing. The results JSON stores them as ``per_image`` (``docs/CONTRACTS.md``), which
is what ``irstd-bench compare`` and ``report`` resample.

JSON layout (columns of equal length, one entry per image in split order)::

    "per_image": {
      "image": ["Misc_1", ...], "gt": [1, ...], "pred": [2, ...], "tp": [1, ...],
      "pixels": {"intersection": [...], "union": [...], "pd_matched": [...],
                 "fa_px": [...], "total_px": [...]},          // null: boxes (no pixel metrics)
      "ap50": {"candidates": [3, ...],                          // AP candidates of each image
               "scores": [0.91, 0.40, 0.02, ...],               // image by image, decreasing
               "hits": [1, 0, 0, ...]}                          // box IoU >= 0.5 pairs
    }
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irstd_bench._csv import read_csv_cell
from irstd_bench.errors import InputError

#: Pixel statistics of each image (:class:`~irstd_bench.evaluate._pixel_metrics.PixelStats`).
PIXEL_FIELDS = ("intersection", "union", "pd_matched", "fa_px", "total_px")
#: Per-image counts at the run's threshold.
COUNT_FIELDS = ("gt", "pred", "tp")
#: Largest count a per-image field may hold: far above any image's pixels (the readers decode at
#: most 179 Mpx) and low enough that sums over millions of images stay exact in int64.
MAX_COUNT = 10**12


@dataclass(frozen=True)
class PerImageData:
    """A split's per-image numbers (``N`` images, ``D`` AP candidates in all).

    Attributes
    ----------
    stems : tuple of str (N,)
    gt, pred, tp : ndarray (N,) int64
        Ground-truth targets, predictions kept at the run's threshold and their matches.
    pixels : dict of str to ndarray (N,) int64, or None
        :data:`PIXEL_FIELDS` (score maps and masks against mask ground truth); ``None`` otherwise.
    ap_candidates : ndarray (N,) int64, or None
        AP candidates of each image (``None``: not recorded, e.g. read from a per-image CSV).
    ap_scores : ndarray (D,) float64, or None
        Their scores, image by image, each image's in decreasing score (AP's order).
    ap50_hits : ndarray (D,) bool, or None
        Whether each is a hit of COCO's greedy assignment at box IoU >= 0.5.
    """

    stems: tuple[str, ...]
    gt: np.ndarray
    pred: np.ndarray
    tp: np.ndarray
    pixels: dict[str, np.ndarray] | None = None
    ap_candidates: np.ndarray | None = None
    ap_scores: np.ndarray | None = None
    ap50_hits: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.stems)

    @property
    def has_ap50(self) -> bool:
        return self.ap_candidates is not None

    @property
    def candidate_image(self) -> np.ndarray:
        """``(D,)`` index of the image of each AP candidate."""
        return np.repeat(np.arange(len(self)), self.ap_candidates)

    @classmethod
    def from_records(cls, records: Sequence, max_dets: int | None = None, *, with_ap50: bool = True) -> PerImageData:
        """From :class:`~irstd_bench.evaluate._records.ImageRecord`s; ``max_dets`` keeps each
        image's highest-scored AP candidates, as :func:`~irstd_bench.evaluate._summary.average_precisions`;
        ``with_ap50=False`` (AP50 undefined for the run, :func:`~irstd_bench.evaluate.ap50_undefined`)
        records no candidates."""
        cap = slice(None) if max_dets is None else slice(0, int(max_dets))
        pixels = None
        if records and all(r.pixels is not None for r in records):
            pixels = {k: np.array([getattr(r.pixels, k) for r in records], np.int64) for k in PIXEL_FIELDS}
        scores = [np.asarray(r.ap_scores[cap], np.float64) for r in records]
        hits = [np.asarray(r.ap50_hits[cap], bool) for r in records]
        counts = dict(
            stems=tuple(r.stem for r in records),
            gt=np.array([len(r.gt_boxes) for r in records], np.int64),
            pred=np.array([len(r.pred_scores) for r in records], np.int64),
            tp=np.array([r.tp for r in records], np.int64),
            pixels=pixels,
        )
        if not with_ap50:
            return cls(**counts)
        return cls(
            **counts,
            ap_candidates=np.array([len(s) for s in scores], np.int64),
            ap_scores=np.concatenate([np.zeros(0), *scores]),
            ap50_hits=np.concatenate([np.zeros(0, bool), *hits]),
        )

    def to_json(self) -> dict:
        """The ``per_image`` object of the results JSON (module docstring)."""
        out: dict = {"image": list(self.stems), **{k: getattr(self, k).tolist() for k in COUNT_FIELDS}}
        out["pixels"] = None if self.pixels is None else {k: self.pixels[k].tolist() for k in PIXEL_FIELDS}
        out["ap50"] = None
        if self.has_ap50:
            out["ap50"] = {
                "candidates": self.ap_candidates.tolist(),
                "scores": self.ap_scores.tolist(),
                "hits": self.ap50_hits.astype(np.int64).tolist(),
            }
        return out

    def reordered(self, stems: Sequence[str]) -> PerImageData:
        """The same data with images in the order of ``stems`` (the same set of stems)."""
        position = {s: i for i, s in enumerate(self.stems)}
        order = np.array([position[s] for s in stems], np.int64)
        if np.array_equal(order, np.arange(len(self))):
            return self
        pixels = None if self.pixels is None else {k: v[order] for k, v in self.pixels.items()}
        scores = hits = counts = None
        if self.has_ap50:
            starts = np.concatenate([[0], np.cumsum(self.ap_candidates)])
            pick = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in order] or [np.zeros(0, np.int64)])
            counts, scores, hits = self.ap_candidates[order], self.ap_scores[pick], self.ap50_hits[pick]
        return PerImageData(
            tuple(stems), self.gt[order], self.pred[order], self.tp[order], pixels, counts, scores, hits
        )


def _whole_numbers(values, what: str, source: str, length: int | None = None) -> np.ndarray:
    """A JSON list of whole numbers in ``[0, MAX_COUNT]`` as int64, or an :class:`InputError` naming ``what``."""
    if not isinstance(values, list) or any(
        isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_COUNT for v in values
    ):
        raise InputError(f"{source}: per_image.{what} must be a list of whole numbers in [0, {MAX_COUNT}]")
    if length is not None and len(values) != length:
        raise InputError(f"{source}: per_image.{what} has {len(values)} entries, per_image.image {length}")
    return np.array(values, np.int64)


def parse_per_image(data, source: str) -> PerImageData:
    """Validate the ``per_image`` object of a results JSON; every problem is an :class:`InputError`
    naming ``source``."""
    if not isinstance(data, Mapping):
        raise InputError(f"{source}: per_image must be an object")
    stems = data.get("image")
    if not isinstance(stems, list) or not all(isinstance(s, str) for s in stems):
        raise InputError(f"{source}: per_image.image must be a list of image names")
    if len(set(stems)) != len(stems):
        raise InputError(f"{source}: per_image.image names an image twice")
    n = len(stems)
    gt, pred, tp = (_whole_numbers(data.get(k), k, source, n) for k in COUNT_FIELDS)
    if np.any(tp > np.minimum(gt, pred)):
        raise InputError(f"{source}: per_image.tp exceeds gt or pred for an image")
    pixels = data.get("pixels")
    if pixels is not None:
        if not isinstance(pixels, Mapping):
            raise InputError(f"{source}: per_image.pixels must be an object or null")
        pixels = {k: _whole_numbers(pixels.get(k), f"pixels.{k}", source, n) for k in PIXEL_FIELDS}
    ap = data.get("ap50")
    counts = scores = hits = None
    if ap is not None:
        if not isinstance(ap, Mapping):
            raise InputError(f"{source}: per_image.ap50 must be an object or null")
        counts = _whole_numbers(ap.get("candidates"), "ap50.candidates", source, n)
        total = int(counts.sum())
        hits = _whole_numbers(ap.get("hits"), "ap50.hits", source, total)
        values = ap.get("scores")
        if not isinstance(values, list) or len(values) != total:
            raise InputError(f"{source}: per_image.ap50.scores must hold one score per candidate ({total})")
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
            raise InputError(f"{source}: per_image.ap50.scores must be numbers")
        scores = np.array(values, np.float64)
        if not np.all(np.isfinite(scores)) or np.any(hits > 1):
            raise InputError(f"{source}: per_image.ap50 holds a non-finite score or a hit other than 0/1")
        hits = hits.astype(bool)
    return PerImageData(tuple(stems), gt, pred, tp, pixels, counts, scores, hits)


def read_per_image_csv(path: Path) -> PerImageData:
    """The counts of a per-image CSV written by ``eval`` (``image,gt,pred,tp,...``): the
    per-image numbers of results files of older evaluators, which have no ``per_image`` (no AP
    candidates, no pixel counts)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = set(reader.fieldnames or ())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the per-image CSV ({exc})") from None
    if not {"image", *COUNT_FIELDS} <= columns:
        raise InputError(f"{path}: per-image CSV lacks the columns image, gt, pred, tp")
    try:
        counts = {k: [int(row[k]) for row in rows] for k in COUNT_FIELDS}
    except (TypeError, ValueError):
        raise InputError(f"{path}: per-image CSV holds a count that is not a whole number") from None
    data = {"image": [read_csv_cell(row["image"]) for row in rows], **counts}
    return parse_per_image(data, str(path))


def align_images(named: Sequence[tuple[str, PerImageData]]) -> list[PerImageData]:
    """The data of several runs with the images of the first run's order; refuses (one line,
    :class:`InputError`) runs of different image sets or of different ground truth (an image
    with another number of targets)."""
    (first_name, first), *_ = named
    out = []
    for name, data in named:
        if set(data.stems) != set(first.stems):
            only = sorted(set(data.stems) ^ set(first.stems))
            raise InputError(
                f"{first_name} and {name}: different image sets ({len(first)} and {len(data)} images; "
                f"{only[0]!r} is in one only); a paired comparison needs the same images"
            )
        data = data.reordered(first.stems)
        differ = np.flatnonzero(data.gt != first.gt)
        if differ.size:
            i = int(differ[0])
            raise InputError(
                f"{first_name} and {name}: image {first.stems[i]!r} has {first.gt[i]} and {data.gt[i]} "
                "ground-truth targets; the runs were scored against different ground truth"
            )
        out.append(data)
    return out
