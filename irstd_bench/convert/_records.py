"""One image's conversion: its mask becomes targets, in a worker process.

Workers only read and compute; every file is written by the parent process, in a fixed order,
so the output does not depend on the number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from irstd_bench._io import verify_image
from irstd_bench.convert._rle import target_rles
from irstd_bench.datasets import Sample, load_ground_truth


@dataclass(frozen=True)
class ImageRecord:
    """What conversion learned about one image.

    Attributes
    ----------
    stem : str
        Image stem (``Misc_1``).
    image_path : Path
        The source image file.
    width, height : int
        Native image size in pixels.
    depth : int
        Channels stored in the file (1 grayscale or palette, 3 RGB, 4 RGBA).
    boxes : tuple of (x0, y0, x1, y1)
        One tight box per target, pixels, pixel-edge convention (``x1 = max column + 1``).
    area_px : tuple of int
        Foreground pixels of each target.
    centroids : tuple of (x, y)
        Mean pixel centre of each target, pixels, pixel-edge frame.
    nonbinary_values : tuple of int
        Mask values other than 0 and 255.
    mask_resized : bool
        The mask had another size and was resized to the image (nearest neighbour).
    skipped : str
        Empty, or why the image was left out (its mask size differs from the image's).
    mask_size : (H, W) or None
        Mask size when it differs from the image's, else ``None``.
    known_defect : str
        Description of a known defect of the release for this image, or ``""``.
    rles : tuple of dict
        Each target's pixels as compressed COCO RLE ``{"size": [H, W], "counts": str}``
        (:func:`irstd_bench.convert._rle.target_rles`).
    warnings : tuple of str
        Warning lines met while reading the mask (a known defect resized, a {0, 1} mask read
        as binary), each naming the file; the parent process reports them once, in order.
    """

    stem: str
    image_path: Path
    width: int
    height: int
    depth: int
    boxes: tuple[tuple[int, int, int, int], ...] = ()
    area_px: tuple[int, ...] = ()
    centroids: tuple[tuple[float, float], ...] = ()
    nonbinary_values: tuple[int, ...] = ()
    mask_resized: bool = False
    skipped: str = ""
    mask_size: tuple[int, int] | None = None
    known_defect: str = ""
    rles: tuple[dict, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def file_name(self) -> str:
        return self.image_path.name

    @property
    def n_targets(self) -> int:
        return len(self.boxes)


@dataclass(frozen=True)
class ConvertSettings:
    """How masks become targets (see :func:`irstd_bench.targets.mask_to_targets`)."""

    threshold: float
    connectivity: int
    resize_masks: bool


def _check_image(path: Path) -> int:
    """Check that an image file is intact and return its channel count (:func:`irstd_bench._io.verify_image`)."""
    return verify_image(path)


def convert_sample(sample: Sample, known_defect: str, settings: ConvertSettings) -> ImageRecord:
    """Targets of one sample. A mask of another size than its image follows the one defect
    policy (:func:`irstd_bench.datasets.fit_mask_to_image`): a known release defect is resized,
    anything else raises :class:`~irstd_bench.datasets.MaskSizeMismatch` unless ``resize_masks``."""
    depth = _check_image(sample.image_path)
    notes: list[str] = []  # reported by the parent process, not printed by a worker
    gt = load_ground_truth(
        sample,
        threshold=settings.threshold,
        connectivity=settings.connectivity,
        resize_masks=settings.resize_masks,
        known_defect=known_defect,
        warn=notes.append,
    )
    t = gt.targets
    h, w = t.image_size
    return ImageRecord(
        stem=sample.stem,
        image_path=sample.image_path,
        width=int(w),
        height=int(h),
        depth=depth,
        boxes=tuple(tuple(int(v) for v in box) for box in t.boxes),
        area_px=tuple(int(a) for a in t.area_px),
        centroids=tuple((float(c[0]), float(c[1])) for c in t.centroids),
        nonbinary_values=tuple(gt.nonbinary_values),
        mask_resized=gt.mask_resized,
        known_defect=known_defect if gt.mask_resized else "",
        rles=tuple(target_rles(t)),
        warnings=tuple(notes),
    )


def convert_chunk(jobs: list[tuple[Sample, str]], settings: ConvertSettings) -> list[ImageRecord]:
    """:func:`convert_sample` over a chunk of ``(sample, known_defect)`` (one task of a worker)."""
    return [convert_sample(sample, known, settings) for sample, known in jobs]
