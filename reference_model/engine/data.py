"""Training and validation data: split resolution, image/mask loading, letterbox, augment, collate.

Images are read as one channel with :func:`irstd_bench._io.read_gray` (IR frames are
grayscale; colour files become luminance), scaled to ``[0, 1]`` (8-bit by 1/255, 16-bit by the
image maximum, as :func:`irstd_bench._io.read_rgb` does) and replicated to 3 channels at the
end, as every model expects ``(B, 3, H, W)``. Masks are binarised like the evaluator does
(value > 127), so training and scoring agree on what a target is.

Randomness of the augmentation comes from a generator seeded by ``(seed, epoch, index)``,
never from global state: a batch is the same whatever the number of loader workers, and a
resumed run sees exactly the images an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from irstd_bench._io import image_size, read_gray
from irstd_bench.datasets import Dataset, Sample, load_ground_truth, read_sample_mask
from irstd_bench.errors import InputError
from irstd_bench.targets import DEFAULT_THRESHOLD, mask_to_targets

from .transforms import (
    AugmentConfig,
    Letterbox,
    mosaic,
    photometric_jitter,
    random_crop_keeping_targets,
    random_flips,
)

# Independent augmentation streams under one (seed, epoch, index).
AUGMENT_STREAM = 0
MOSAIC_STREAM = 1


@dataclass(frozen=True)
class SplitPlan:
    """Which split files a training run uses.

    Attributes
    ----------
    family : str
        The split family asked for (``idx_427``, ``default``...).
    train, val : str
        Split names for training and validation.
    val_is_test : bool
        The family has no validation part and its test part is used instead.
    """

    family: str
    train: str
    val: str
    val_is_test: bool


def plan_splits(ds: Dataset, family: str) -> SplitPlan:
    """Resolve a split family to its train (or trainval) and val (else test) parts.

    Raises :class:`InputError` when the family has no training part, or neither val nor test.
    """
    family = (family or "default").strip("/")
    train = ds.family_split(family, "train") or ds.family_split(family, "trainval")
    if train is None:
        families = sorted({n.rsplit("/", 1)[0] for n in ds.split_files() if "/" in n})
        raise InputError(
            f"split family {family!r} of {ds.layout.title} at {ds.root} has no train or trainval split "
            f"(families found: {', '.join(families) or 'none'})"
        )
    val = ds.family_split(family, "val")
    if val is not None:
        return SplitPlan(family, train, val, False)
    test = ds.family_split(family, "test")
    if test is None:
        raise InputError(f"split family {family!r} at {ds.root} has neither a val nor a test split")
    return SplitPlan(family, train, test, True)


def image_to_unit(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 -> float32 in [0, 1] by 1/255; other integer types by the image maximum."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    image = image.astype(np.float32)
    return image / max(float(image.max()), 1.0)


def read_image(path) -> np.ndarray:
    """Read an image file as ``(H, W)`` float32 in [0, 1] (see module docstring)."""
    return image_to_unit(read_gray(path))


def read_binary_mask(sample: Sample, ds: Dataset | None = None, resize_masks: bool = False) -> np.ndarray:
    """The sample's mask as ``(H, W)`` bool at the image's size (value > 127 is foreground).

    Read by :func:`irstd_bench.datasets.read_sample_mask`, the path every command shares:
    integrity-checked, {0, 1} masks read as binary, and the one defect policy (a known release
    defect is resized with a warning; another size mismatch raises :class:`MaskSizeMismatch`
    unless ``resize_masks``).
    """
    hw = image_size(sample.image_path)
    known = ds.known_defect(sample.stem) if ds is not None else ""
    mask, _ = read_sample_mask(sample, hw, known_defect=known, resize_masks=resize_masks)
    return mask > DEFAULT_THRESHOLD


def count_targets(samples: Sequence[Sample], ds: Dataset | None = None, resize_masks: bool = False) -> int:
    """Number of ground-truth targets over ``samples`` (8-connected components of their masks)."""
    return sum(len(mask_to_targets(read_binary_mask(s, ds, resize_masks))) for s in samples)


def to_tensor_image(image: np.ndarray) -> torch.Tensor:
    """``(H, W)`` float32 [0, 1] -> ``(3, H, W)`` float32 tensor (grayscale replicated)."""
    return torch.from_numpy(np.ascontiguousarray(image)).unsqueeze(0).expand(3, -1, -1).contiguous()


class IRDataset(TorchDataset):
    """Samples of one split, letterboxed to ``input_size`` and optionally augmented.

    Each item is a dict:

    - ``image``: Tensor ``(3, S, S)`` float32 in [0, 1];
    - ``boxes``: Tensor ``(N, 4)`` float32, ``[x0, y0, x1, y1]`` input px, from the final mask;
    - ``masks``: Tensor ``(S, S)`` float32 in {0, 1};
    - ``stem``: str; ``letterbox``: :class:`Letterbox` (``None`` for a mosaic).

    Parameters
    ----------
    samples : sequence of Sample
    input_size : int
        Side ``S`` of the square input, px (a multiple of 32).
    augment : AugmentConfig, optional
        ``None``: letterbox only (validation).
    seed : int
        Seed of the augmentation streams (with the epoch from :meth:`set_epoch` and the index).
    cache : bool
        Keep decoded native images (as stored) and masks in memory; IRSTD sets are small.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        input_size: int,
        *,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        dataset: Dataset | None = None,
        resize_masks: bool = False,
        cache: bool = True,
    ) -> None:
        self.samples = list(samples)
        self.input_size = int(input_size)
        self.augment = augment
        self.seed = int(seed)
        self.dataset = dataset
        self.resize_masks = resize_masks
        self.cache = cache
        self.epoch = 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (call before each epoch's loader is iterated)."""
        self.epoch = int(epoch)

    def native(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Native ``(image (H, W) float32 [0, 1], mask (H, W) bool)`` of sample ``index``."""
        if index in self._cache:
            raw, mask = self._cache[index]
            return image_to_unit(raw), mask
        sample = self.samples[index]
        raw = read_gray(sample.image_path)
        mask = read_binary_mask(sample, self.dataset, self.resize_masks)
        if self.cache:
            self._cache[index] = (raw, mask)
        return image_to_unit(raw), mask

    def preload(self) -> list[np.ndarray]:
        """Decode every image and mask now (in this process, before loader workers fork).

        Images are kept as stored (uint8 / uint16), so the cache is as large as the files'
        pixels. Returns the native masks, ``(H, W)`` bool each.
        """
        masks = []
        for index in range(len(self)):
            _, mask = self.native(index)
            masks.append(mask)
        return masks

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        key = np.random.SeedSequence([self.seed, self.epoch, index, stream])
        return np.random.Generator(np.random.PCG64(key))

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        # ``(epoch, index)`` keys come from :class:`EpochTaggedSampler`: persistent loader workers
        # hold their own copy of this dataset, so the epoch must travel with each index.
        if isinstance(key, tuple):
            self.epoch, index = int(key[0]), int(key[1])
        else:
            index = int(key)
        image, mask = self.native(index)
        letterbox = Letterbox.fit(mask.shape, self.input_size)
        aug = self.augment
        if aug is None:
            image, mask = letterbox.image_to_input(image), letterbox.mask_to_input(mask)
        else:
            rng = self._rng(index, AUGMENT_STREAM)
            if aug.mosaic > 0 and rng.random() < aug.mosaic and len(self) > 1:
                image, mask = self._mosaic(index, rng)
                letterbox = None
            else:
                if aug.crop > 0 and rng.random() < aug.crop:
                    image, mask = random_crop_keeping_targets(image, mask, rng, aug.crop_min_side)
                    letterbox = None  # the crop frame is not the native frame any more
                box = Letterbox.fit(mask.shape, self.input_size)
                image, mask = box.image_to_input(image), box.mask_to_input(mask)
            image, mask = random_flips(image, mask, rng, aug.hflip, aug.vflip)
            image = photometric_jitter(image, rng, aug)
        targets = mask_to_targets(mask)
        return {
            "image": to_tensor_image(image),
            "boxes": torch.from_numpy(targets.boxes.astype(np.float32)).reshape(-1, 4),
            "masks": torch.from_numpy(mask.astype(np.float32)),
            "stem": self.samples[index].stem,
            "letterbox": letterbox,
        }

    def _mosaic(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        others = rng.choice(np.delete(np.arange(len(self)), index), size=3, replace=len(self) < 4)
        tiles = [self.native(int(i)) for i in (index, *others)]
        return mosaic(tiles, self.input_size)


def collate(items: list[dict]) -> tuple[torch.Tensor, list[dict], list[dict]]:
    """Batch items -> ``images (B, 3, S, S)``, ``targets`` (``{"boxes", "masks"}`` per image), ``meta``.

    ``meta`` per image: ``{"stem": str, "letterbox": Letterbox | None}``.
    """
    images = torch.stack([it["image"] for it in items])
    targets = [{"boxes": it["boxes"], "masks": it["masks"]} for it in items]
    meta = [{"stem": it["stem"], "letterbox": it["letterbox"]} for it in items]
    return images, targets, meta


def ground_truth(samples: Sequence[Sample], ds: Dataset | None = None, resize_masks: bool = False) -> list:
    """``GroundTruth`` of every sample, as ``irstd-bench eval`` reads it (native pixels)."""
    out = []
    for s in samples:
        known = ds.known_defect(s.stem) if ds is not None else ""
        out.append(load_ground_truth(s, resize_masks=resize_masks or bool(known), known_defect=known))
    return out


__all__ = [
    "IRDataset",
    "SplitPlan",
    "collate",
    "count_targets",
    "ground_truth",
    "image_to_unit",
    "plan_splits",
    "read_binary_mask",
    "read_image",
    "to_tensor_image",
]


class EpochTaggedSampler(torch.utils.data.Sampler):
    """Yields ``(epoch, index)`` from a sampler with ``set_epoch`` (e.g. ``DistributedSampler``).

    With persistent loader workers the dataset copies in the workers never see
    :meth:`IRDataset.set_epoch`; tagging each index with the epoch keeps the augmentation a
    function of ``(seed, epoch, index)`` alone, so any worker count gives identical batches.
    """

    def __init__(self, sampler) -> None:
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        return ((self.epoch, int(i)) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)
