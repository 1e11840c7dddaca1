"""The in-memory prediction of one image: boxes with scores, or a mask / score map.

:class:`Prediction` checks its values once, when it is made; the file readers
(:mod:`irstd_bench.evaluate._readers`) and the prediction sets
(:mod:`irstd_bench.evaluate._prediction_set`) build it.

Scores must be finite and in ``[0, 1]``; a box must have ``x1 >= x0`` and ``y1 >= y0``. A box
reaching at most :data:`BOX_TOLERANCE_PX` beyond the image is clipped to it (and counted);
one reaching further is an error naming the file and row.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from irstd_bench.errors import InputError

#: How far (px) a box may reach beyond the image and still be accepted (it is clipped).
BOX_TOLERANCE_PX = 1.0


@dataclass
class Prediction:
    """The prediction for one image: boxes with scores, or a score map.

    Attributes
    ----------
    stem : str
        Image stem (``Misc_1``).
    kind : {"boxes", "masks", "scoremaps"}
    boxes : ndarray (N, 4) float64 or None
        ``[x0, y0, x1, y1]`` in native pixels, pixel-edge convention.
    scores : ndarray (N,) float64 or None
        Confidence of each box, in ``[0, 1]``.
    score_map : ndarray (H, W) or None
        ``bool`` for masks, ``float32`` in ``[0, 1]`` for score maps.
    image_size : (H, W) or None
        Native size the prediction refers to (``None``: the ground truth's).
    source : str
        File it was read from (for messages).
    rows : ndarray (N,) or None
        Row of each box in ``source`` (line or entry number, for messages).
    """

    stem: str
    kind: str
    boxes: np.ndarray | None = None
    scores: np.ndarray | None = None
    score_map: np.ndarray | None = field(default=None, repr=False)
    image_size: tuple[int, int] | None = None
    source: str = ""
    rows: np.ndarray | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return self.source or f"prediction {self.stem}"

    @classmethod
    def from_boxes(
        cls,
        stem: str,
        boxes,
        scores,
        image_size: tuple[int, int] | None = None,
        *,
        source: str = "",
        rows=None,
    ) -> Prediction:
        """Boxes ``(N, 4)`` ``[x0, y0, x1, y1]`` in native pixels with scores ``(N,)`` in ``[0, 1]``.

        Examples
        --------
        >>> p = Prediction.from_boxes("Misc_1", [[10, 12, 13, 14]], [0.9], image_size=(256, 256))
        >>> p.kind, p.boxes.shape
        ('boxes', (1, 4))
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        where = source or f"prediction {stem}"
        row_ids = np.arange(len(boxes)) if rows is None else np.asarray(rows)
        if len(scores) != len(boxes):
            raise InputError(f"{where}: {len(boxes)} boxes but {len(scores)} scores")
        bad = ~np.isfinite(boxes).all(1)
        if bad.any():
            raise InputError(f"{where}: row {row_ids[np.argmax(bad)]}: box coordinates are not finite")
        _check_scores(scores, where, row_ids)
        bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"{where}: row {row_ids[i]}: box {boxes[i].tolist()} has x1 < x0 or y1 < y0")
        size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        return cls(stem, "boxes", boxes=boxes, scores=scores, image_size=size, source=source, rows=row_ids)

    @classmethod
    def from_score_map(cls, stem: str, score_map, *, source: str = "") -> Prediction:
        """A score map ``(H, W)`` in ``[0, 1]``; a ``bool`` or 0/1 map is a mask.

        Pixels with score ``>= conf`` are foreground at confidence ``conf``.

        Examples
        --------
        >>> Prediction.from_score_map("a", np.array([[0.0, 1.0]])).kind
        'masks'
        >>> Prediction.from_score_map("a", np.array([[0.2, 0.9]])).kind
        'scoremaps'
        """
        where = source or f"prediction {stem}"
        array = np.asarray(score_map)
        if array.ndim != 2 or not array.size:
            raise InputError(f"{where}: score map must be 2-D (H, W) and not empty, got shape {array.shape}")
        if array.dtype == bool:
            return cls(stem, "masks", score_map=array, image_size=array.shape, source=source)
        if not np.issubdtype(array.dtype, np.number):
            raise InputError(f"{where}: score map has non-numeric dtype {array.dtype}")
        array = array.astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            raise InputError(f"{where}: score map contains NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise InputError(f"{where}: score map values must be in [0, 1], found [{low:g}, {high:g}]")
        if np.all((array == 0) | (array == 1)):
            return cls(stem, "masks", score_map=array == 1, image_size=array.shape, source=source)
        return cls(stem, "scoremaps", score_map=array, image_size=array.shape, source=source)

    @classmethod
    def empty(cls, stem: str, kind: str, image_size: tuple[int, int]) -> Prediction:
        """No detections."""
        if kind == "boxes":
            return cls.from_boxes(stem, np.zeros((0, 4)), np.zeros(0), image_size)
        return cls(stem, kind, score_map=np.zeros(image_size, bool), image_size=image_size)


def _check_scores(scores: np.ndarray, where: str, rows: np.ndarray) -> None:
    bad = ~np.isfinite(scores) | (scores < 0) | (scores > 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{where}: row {rows[i]}: score {float(scores[i])!r} is NaN or outside [0, 1]")


def clip_boxes(prediction: Prediction, image_size: tuple[int, int]) -> tuple[Prediction, int]:
    """Check a box prediction against the image; clip boxes within the tolerance.

    Returns the (possibly clipped) prediction and the number of clipped boxes. A box reaching
    more than :data:`BOX_TOLERANCE_PX` beyond the image raises :class:`InputError`.
    """
    boxes = prediction.boxes
    if boxes is None or len(boxes) == 0:
        return prediction, 0
    h, w = image_size
    limits = np.array([0, 0, w, h], np.float64)
    below = boxes[:, :2] < -BOX_TOLERANCE_PX
    above = boxes[:, 2:] > limits[2:] + BOX_TOLERANCE_PX
    low_side = boxes[:, 2:] < -BOX_TOLERANCE_PX
    high_side = boxes[:, :2] > limits[2:] + BOX_TOLERANCE_PX
    bad = below.any(1) | above.any(1) | low_side.any(1) | high_side.any(1)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"{prediction.where}: row {prediction.rows[i]}: box {boxes[i].tolist()} lies outside the "
            f"{w}x{h} image by more than {BOX_TOLERANCE_PX:g} px"
        )
    clipped = np.clip(boxes, 0, np.array([w, h, w, h], np.float64))
    changed = int(np.count_nonzero((clipped != boxes).any(1)))
    if not changed:
        return prediction, 0
    return replace(prediction, boxes=clipped), changed


def resize_nearest(score_map: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a mask or score map to ``image_size = (H, W)``."""
    h, w = image_size
    if score_map.dtype == bool:
        out = Image.fromarray(score_map.astype(np.uint8)).resize((w, h), Image.Resampling.NEAREST)
        return np.asarray(out).astype(bool)
    out = Image.fromarray(score_map.astype(np.float32), mode="F").resize((w, h), Image.Resampling.NEAREST)
    return np.asarray(out)
