"""Training and validation data: split resolution, image/mask loading, letterbox, device tensors, collate.

Images are read as one channel with :func:`irstd_bench._io.read_gray` (IR frames are
grayscale; colour files become luminance), scaled to ``[0, 1]`` (8-bit by 1/255, 16-bit by the
image maximum, as :func:`irstd_bench._io.read_rgb` does) and replicated to 3 channels at the
end, as every model expects ``(B, 3, H, W)``. Masks are binarised like the evaluator does
(value > 127), so training and scoring agree on what a target is.

Training augmentation is not done here: the training set is decoded once into tensors held
on the training device (:func:`load_letterboxed`) and augmented batch-wise there
(:mod:`.augment`). :class:`IRDataset` serves letterboxed items (validation, inference, and the
one-time decoding of the training set).
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

from .crop import target_union
from .transforms import PAD_VALUE, Letterbox


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
    """Samples of one split, letterboxed to ``input_size`` (no augmentation, no hidden state).

    Each item is a dict:

    - ``image``: Tensor ``(3, S, S)`` float32 in [0, 1];
    - ``boxes``: Tensor ``(N, 4)`` float32, ``[x0, y0, x1, y1]`` input px, from the letterboxed mask;
    - ``masks``: Tensor ``(S, S)`` float32 in {0, 1};
    - ``stem``: str; ``letterbox``: :class:`Letterbox`.

    Parameters
    ----------
    samples : sequence of Sample
    input_size : int
        Side ``S`` of the square input, px.
    cache : bool
        Keep decoded native images (as stored) and masks in memory; IRSTD sets are small.
    pad_value : float
        Value of the letterbox padding, in [0, 1] (a run's ``pad_value``).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        input_size: int,
        *,
        dataset: Dataset | None = None,
        resize_masks: bool = False,
        cache: bool = True,
        pad_value: float = PAD_VALUE,
    ) -> None:
        self.samples = list(samples)
        self.pad_value = float(pad_value)
        self.input_size = int(input_size)
        self.dataset = dataset
        self.resize_masks = resize_masks
        self.cache = cache
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.samples)

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

    def __getitem__(self, index: int) -> dict:
        image, mask = self.native(int(index))
        letterbox = Letterbox.fit(mask.shape, self.input_size)
        image, mask = letterbox.image_to_input(image, self.pad_value), letterbox.mask_to_input(mask)
        targets = mask_to_targets(mask)
        return {
            "image": to_tensor_image(image),
            "boxes": torch.from_numpy(targets.boxes.astype(np.float32)).reshape(-1, 4),
            "masks": torch.from_numpy(mask.astype(np.float32)),
            "stem": self.samples[int(index)].stem,
            "letterbox": letterbox,
        }


@dataclass
class LetterboxedTensors:
    """A split decoded once and letterboxed onto ``S x S``, as tensors on one device.

    Attributes
    ----------
    images : Tensor (N, 1, S, S) float32 in [0, 1] (one channel; models get it replicated to 3)
    masks : Tensor (N, 1, S, S) float32 in {0, 1}
    boxes : Tensor (N, T, 4) float32, input px (``T`` = most targets of an image, at least 1)
    valid : Tensor (N, T) bool, which rows of ``boxes`` are targets
    meta : list of dict
        Per image ``{"stem": str, "letterbox": Letterbox}`` (native <-> input mapping).
    union : ndarray (N, 4) float64 or None
        Union box of each image's targets, input px, on the host (NaN: no target); ``None``:
        computed from ``boxes`` when first asked for (:meth:`target_union`).
    content : ndarray (N, 4) int64 or None
        Where each image lies in its square, ``[x0, y0, x1, y1]`` px (the rest is letterbox
        padding), on the host; ``None``: the whole square (:meth:`tile_content`).
    """

    images: torch.Tensor
    masks: torch.Tensor
    boxes: torch.Tensor
    valid: torch.Tensor
    meta: list[dict]
    union: np.ndarray | None = None
    content: np.ndarray | None = None

    def target_union(self, indices: np.ndarray) -> np.ndarray:
        """Union boxes ``(B, 4)`` of the targets of images ``indices`` (host; no device copy once known)."""
        if self.union is None:
            self.union = target_union(self.boxes, self.valid)
        return self.union[np.asarray(indices, np.int64)]

    def tile_content(self, indices: np.ndarray) -> np.ndarray:
        """Content rectangles ``(B, 4)`` int64 of images ``indices`` in their squares (host)."""
        indices = np.asarray(indices, np.int64)
        if self.content is None:
            side = int(self.images.shape[-1])
            return np.tile(np.array([0, 0, side, side], np.int64), (len(indices), 1))
        return self.content[indices]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_targets(self) -> int:
        return int(self.valid.sum())


def _as_list(items: list[dict]) -> list[dict]:
    return items


def load_letterboxed(
    samples: Sequence[Sample],
    size: int,
    device: torch.device,
    *,
    dataset: Dataset | None = None,
    resize_masks: bool = False,
    workers: int = 0,
    pad_value: float = PAD_VALUE,
) -> LetterboxedTensors:
    """Decode ``samples`` (``workers`` loader processes), letterbox them to ``size`` (padding
    ``pad_value``) and move them to ``device``.

    Memory: ``8 N S^2`` bytes on ``device`` (NUAA-SIRST's 341 training images at 512 px: 0.7 GB).
    """
    data = IRDataset(samples, size, dataset=dataset, resize_masks=resize_masks, cache=False, pad_value=pad_value)
    loader = torch.utils.data.DataLoader(
        data, batch_size=32, shuffle=False, num_workers=workers, collate_fn=_as_list
    )
    items = [item for chunk in loader for item in chunk]
    most = max([1, *(len(it["boxes"]) for it in items)])
    boxes = torch.zeros((len(items), most, 4), dtype=torch.float32)
    valid = torch.zeros((len(items), most), dtype=torch.bool)
    for i, it in enumerate(items):
        boxes[i, : len(it["boxes"])] = it["boxes"]
        valid[i, : len(it["boxes"])] = True
    images = torch.stack([it["image"][:1] for it in items]) if items else torch.zeros((0, 1, size, size))
    masks = torch.stack([it["masks"][None] for it in items]) if items else torch.zeros((0, 1, size, size))
    return LetterboxedTensors(
        images=images.to(device),
        masks=masks.to(device),
        boxes=boxes.to(device),
        valid=valid.to(device),
        meta=[{"stem": it["stem"], "letterbox": it["letterbox"]} for it in items],
        union=target_union(boxes, valid),
        content=np.array([it["letterbox"].content for it in items], np.int64).reshape(-1, 4),
    )


def collate(items: list[dict]) -> tuple[torch.Tensor, list[dict], list[dict]]:
    """Batch items -> ``images (B, 3, S, S)``, ``targets`` (``{"boxes", "masks"}`` per image), ``meta``.

    ``meta`` per image: ``{"stem": str, "letterbox": Letterbox}``.
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
    "LetterboxedTensors",
    "SplitPlan",
    "collate",
    "count_targets",
    "ground_truth",
    "image_to_unit",
    "load_letterboxed",
    "plan_splits",
    "read_binary_mask",
    "read_image",
    "to_tensor_image",
]

