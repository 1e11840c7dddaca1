"""A dataset on disk: its layout, its splits, its samples and their ground truth."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from irstd_bench._io import check_pixels, image_size, listed_name, read_mask
from irstd_bench.datasets._layouts import NAMED_LAYOUTS, RELEASE_LAYOUTS, Layout, custom_layout
from irstd_bench.datasets._splits import padded_image_id, read_split_file
from irstd_bench.errors import DatasetDefectWarning, InputError
from irstd_bench.targets import DEFAULT_CONNECTIVITY, DEFAULT_THRESHOLD, Targets, check_threshold, mask_to_targets

#: Registry of release layouts by name and alias.
LAYOUTS: dict[str, Layout] = {}
for _layout in NAMED_LAYOUTS:
    for _key in (_layout.name, *_layout.aliases):
        LAYOUTS[_key] = _layout

#: Known defects of the public releases: (layout name, image stem) -> description. The one
#: defect policy (:func:`fit_mask_to_image`) resizes such a mask to its image with a warning
#: naming it, so the official splits keep the sizes published tables count (NUAA-SIRST
#: idx_427/test: 86 images); ``--skip-defects`` leaves these images out in every command.
KNOWN_DEFECTS: dict[tuple[str, str], str] = {
    ("nuaa", "Misc_111"): "NUAA-SIRST release defect: the mask of Misc_111 was saved at another size than its image",
}


@dataclass(frozen=True)
class Sample:
    """One image of a dataset and the path of its mask (``None`` if it has none)."""

    stem: str
    image_path: Path
    mask_path: Path | None


@dataclass
class GroundTruth:
    """Ground-truth targets of one sample, and what was noticed while reading its mask.

    Attributes
    ----------
    sample : Sample
    targets : Targets
        In the image's native pixels.
    nonbinary_values : tuple of int
        Mask values other than 0 and 255 (IRSTD-1k ships labels with value 64).
    mask_resized : bool
        The mask did not have the image's size and was resized (nearest neighbour).
    """

    sample: Sample
    targets: Targets
    nonbinary_values: tuple[int, ...] = ()
    mask_resized: bool = False


class MaskSizeMismatch(InputError):
    """A mask whose size differs from its image's."""

    def __init__(self, sample: Sample, image_hw: tuple[int, int], mask_hw: tuple[int, int], known: str = ""):
        self.sample, self.image_hw, self.mask_hw, self.known = sample, image_hw, mask_hw, known
        what = f"{known}; " if known else ""
        super().__init__(
            f"{sample.mask_path}: {what}mask is {mask_hw[1]}x{mask_hw[0]} but image {sample.image_path.name} "
            f"is {image_hw[1]}x{image_hw[0]} (use --resize-masks to resize it with nearest neighbour)"
        )

    def __reduce__(self):
        # Raised in worker processes: rebuilt from its arguments in the parent.
        return (type(self), (self.sample, self.image_hw, self.mask_hw, self.known))


@dataclass
class Dataset:
    """A dataset root with a known layout.

    Use :func:`open_dataset` to make one. Split names are split-file paths relative to the
    root without ``.txt`` (``idx_427/test``, ``50_50/train``, ``splits/train_full``), or the
    layout's bare aliases (``train``, ``val``, ``test``, ``trainval``), or ``all`` for every
    image in the image folder.
    """

    root: Path
    layout: Layout
    skip_defects: bool = False
    _split_cache: dict[str, Path] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.layout.name

    @property
    def image_dir(self) -> Path:
        return self.root / self.layout.image_dir

    @property
    def mask_dir(self) -> Path:
        return self.root / self.layout.mask_dir

    def split_files(self) -> dict[str, Path]:
        """All split files of the release: ``{name: path}``, name relative to root without ``.txt``."""
        if not self._split_cache:
            for family in self.layout.split_families:
                folder = self.root / family if family else self.root
                if not folder.is_dir():
                    continue
                for path in sorted(folder.glob("*.txt")):
                    name = f"{family}/{path.stem}" if family else path.stem
                    self._split_cache[name] = path
        return dict(self._split_cache)

    def split_names(self) -> list[str]:
        """Split names a user can pass (files found plus the bare aliases that resolve)."""
        files = self.split_files()
        bare = [a for a, target in self.layout.split_aliases.items() if target in files and a not in files]
        return bare + list(files)

    def resolve_split(self, split: str) -> Path | None:
        """The split file for ``split``; ``None`` for ``all``."""
        if split == "all":
            return None
        files = self.split_files()
        name = split[:-4] if split.endswith(".txt") else split
        name = name.strip("/")
        if name in files:
            return files[name]
        if name in self.layout.split_aliases and self.layout.split_aliases[name] in files:
            return files[self.layout.split_aliases[name]]
        # A bare name that is unique among the split files (e.g. ``train_full``).
        matches = [p for n, p in files.items() if n.rsplit("/", 1)[-1] == name]
        if len(matches) == 1:
            return matches[0]
        direct = self.root / f"{name}.txt"
        if direct.is_file():
            return direct
        known = ", ".join(self.split_names()) or "none found"
        raise InputError(f"unknown split {split!r} for {self.layout.title} at {self.root} (known: {known})")

    def family_split(self, family: str, part: str) -> str | None:
        """Name of ``part`` (``train``/``val``/``test``) in split family ``family``, if present.

        ``family`` is a folder of split files (``idx_427``, ``split_EFLNet``) or ``""``/the
        layout default. ``val`` falls back to nothing (callers choose a fallback).
        """
        files = self.split_files()
        if family in ("", "default"):
            alias = self.layout.split_aliases.get(part)
            return part if alias in files else None
        name = f"{family}/{part}"
        return name if name in files else None

    def stems(self, split: str = "all") -> list[str]:
        """Image stems of a split, in split-file order (``all``: sorted image files).

        Entries are read as image stems by :meth:`image_stem` (the EFLNet authors' ``0001``
        is NUDT-SIRST's ``000001``). With ``skip_defects`` the images of
        :data:`KNOWN_DEFECTS` are left out: every command asks here, so a split holds the same
        images in all of them.
        """
        stems = self.listed_stems(split)
        if self.skip_defects:
            stems = [stem for stem in stems if not self.known_defect(stem)]
        return stems

    def listed_stems(self, split: str = "all") -> list[str]:
        """Image stems a split lists (read by :meth:`image_stem`), known defects included."""
        path = self.resolve_split(split)
        if path is None:
            if not self.image_dir.is_dir():
                raise InputError(f"{self.image_dir}: image folder not found")
            return sorted(Path(listed_name(p)).stem for p in self.image_dir.iterdir() if p.suffix.lower() == ".png")
        stems = [self.image_stem(entry) for entry in read_split_file(path)]
        return list(dict.fromkeys(stems))  # ``0001`` and ``000001`` listed twice: one image

    def image_stem(self, entry: str) -> str:
        """The image stem a name from outside the release means (a split entry, a label file's stem).

        The rule, the one every command and ``audit`` use:

        1. a name that has an image in :attr:`image_dir` is that image;
        2. else, when the layout numbers its images (:attr:`Layout.image_id_digits`: NUDT-SIRST's
           ``000001.png``), a shorter all-digit id is the image of the same number
           (:func:`~irstd_bench.datasets.padded_image_id`: ``0001`` -> ``000001``, as the EFLNet
           authors' ``split_EFLNet`` lists and box labels name them) when that image exists;
        3. else the name as it is: :meth:`sample` refuses it, naming it.
        """
        if self.image_file(entry) is not None:
            return entry
        padded = padded_image_id(entry, self.layout.image_id_digits)
        if padded is not None and self.image_file(padded) is not None:
            return padded
        return entry

    def image_file(self, stem: str) -> Path | None:
        """The image file of ``stem`` (``.png`` first, then ``.bmp``/``.jpg``/``.tif``), if any."""
        image = self.image_dir / f"{stem}.png"
        if image.is_file():
            return image
        others = [p for p in self.image_dir.glob(f"{stem}.*") if p.suffix.lower() in (".bmp", ".jpg", ".tif")]
        return sorted(others)[0] if others else None

    def sample(self, stem: str) -> Sample:
        """The sample of an image stem; raises if the image file does not exist."""
        image = self.image_file(stem)
        if image is None:
            padded = padded_image_id(stem, self.layout.image_id_digits)
            also = f" (nor {padded}.png, the {self.layout.title} name of id {stem!r})" if padded else ""
            raise InputError(f"{self.image_dir / f'{stem}.png'}: split entry {stem!r} has no image{also}")
        mask = self.mask_dir / self.layout.mask_name(stem)
        return Sample(stem=stem, image_path=image, mask_path=mask if mask.is_file() else None)

    def samples(self, split: str = "all", *, skip_missing: bool = False) -> list[Sample]:
        """Samples of a split. An image without a mask is an error unless ``skip_missing``."""
        out = []
        for stem in self.stems(split):
            sample = self.sample(stem)
            if sample.mask_path is None:
                if skip_missing:
                    continue
                raise InputError(
                    f"{self.mask_dir / self.layout.mask_name(stem)}: image {stem} has no mask "
                    "(convert and eval: --skip-missing leaves such images out)"
                )
            out.append(sample)
        return out

    def known_defect(self, stem: str) -> str:
        """Description of a known release defect of this image, or ``""``."""
        return KNOWN_DEFECTS.get((self.layout.name, stem), "")


def open_dataset(
    root: str | Path,
    dataset: str | None = None,
    *,
    image_dir: str | None = None,
    mask_dir: str | None = None,
    mask_suffix: str = "",
    split_dir: str = "",
    skip_defects: bool = False,
) -> Dataset:
    """Open a dataset root, detecting its layout unless ``dataset`` names one.

    Parameters
    ----------
    root : path
        The folder the release unpacks to.
    dataset : str, optional
        ``nuaa``, ``nudt``, ``irstd1k``, ``sirstv2`` (or an alias), or ``custom`` with
        ``image_dir``, ``mask_dir`` and ``mask_suffix``. ``None`` detects the layout.
    skip_defects : bool
        Leave the known release defects (:data:`KNOWN_DEFECTS`) out of every split.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: dataset root not found")
    if dataset == "custom" or (dataset is None and image_dir):
        if not image_dir or not mask_dir:
            raise InputError("--dataset custom needs --image-dir and --mask-dir")
        layout = custom_layout(image_dir, mask_dir, mask_suffix, split_dir)
        if not (root / image_dir).is_dir():
            raise InputError(f"{root / image_dir}: image folder not found")
        if not (root / mask_dir).is_dir():
            raise InputError(f"{root / mask_dir}: mask folder not found")
        return Dataset(root=root, layout=layout, skip_defects=skip_defects)
    if dataset is not None:
        key = dataset.lower()
        if key not in LAYOUTS:
            raise InputError(f"unknown dataset {dataset!r} (known: {', '.join(sorted(set(LAYOUTS)))}, custom)")
        layout = LAYOUTS[key]
        if not (root / layout.image_dir).is_dir():
            raise InputError(f"{root / layout.image_dir}: image folder of {layout.title} not found")
        if not (root / layout.mask_dir).is_dir():
            raise InputError(f"{root / layout.mask_dir}: mask folder of {layout.title} not found")
        return Dataset(root=root, layout=layout.for_root(root), skip_defects=skip_defects)
    for layout in RELEASE_LAYOUTS:
        if layout.looks_like(root):
            return Dataset(root=root, layout=layout.for_root(root), skip_defects=skip_defects)
    raise InputError(
        f"{root}: unknown dataset layout (expected NUAA-SIRST, NUDT-SIRST, IRSTD-1k or SIRST v2 folders; "
        "use --dataset custom --image-dir --mask-dir for others)"
    )


def _resize_nearest(mask: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(mask).resize((hw[1], hw[0]), Image.Resampling.NEAREST))


def _is_binary_mask(mask: np.ndarray) -> bool:
    """Every pixel 0 or 255 (counts only: no sort of the foreground values)."""
    return np.count_nonzero(mask) == np.count_nonzero(mask == 255)


def _default_warn(message: str) -> None:
    warnings.warn(message, DatasetDefectWarning, stacklevel=4)


def fit_mask_to_image(
    mask: np.ndarray,
    image_hw: tuple[int, int],
    sample: Sample,
    *,
    known_defect: str = "",
    resize_masks: bool = False,
    warn: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, bool]:
    """The one defect policy of every command: a mask of another size than its image.

    - same size: the mask as it is;
    - a known release defect (:data:`KNOWN_DEFECTS`, passed as ``known_defect``): resized to the
      image (nearest neighbour) with a warning naming it (``--skip-defects`` keeps such images
      out of the splits instead, :meth:`Dataset.stems`);
    - any other mismatch: :class:`MaskSizeMismatch` naming both sizes, unless ``resize_masks``.

    Returns ``(mask (H, W) at the image size, resized)``.
    """
    if mask.shape == tuple(image_hw):
        return mask, False
    if known_defect:
        (warn or _default_warn)(
            f"{sample.mask_path}: {known_defect} (mask {mask.shape[1]}x{mask.shape[0]}, image "
            f"{image_hw[1]}x{image_hw[0]}); mask resized to the image (nearest neighbour; "
            "--skip-defects leaves it out)"
        )
    elif not resize_masks:
        raise MaskSizeMismatch(sample, image_hw, mask.shape, known_defect)
    return _resize_nearest(mask, image_hw), True


def unit_mask_to_binary(mask: np.ndarray, path: Path | None, warn: Callable[[str], None] | None = None) -> np.ndarray:
    """A mask whose values all lie in {0, 1} (some 1) read as a binary mask: 1 becomes 255.

    Such masks (saved as 0/1 instead of 0/255) would lose every target at the default
    threshold 127; they are read as binary instead, with a warning naming the file.
    """
    if mask.dtype.kind not in "uif" or not mask.size or mask.max() != 1 or mask.min() < 0:
        return mask
    if mask.dtype.kind == "f" and not np.all((mask == 0) | (mask == 1)):
        return mask
    (warn or _default_warn)(f"{path}: mask values are all 0 or 1; read as a binary mask (1 = target)")
    return (mask > 0).astype(np.uint8) * 255


def read_sample_mask(
    sample: Sample,
    image_hw: tuple[int, int],
    *,
    known_defect: str = "",
    resize_masks: bool = False,
    warn: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, bool]:
    """A sample's mask, verified (:func:`irstd_bench._io.read_mask`), {0, 1} masks made binary
    (:func:`unit_mask_to_binary`) and fitted to the image (:func:`fit_mask_to_image`).

    Returns ``(mask (H, W) at ``image_hw``, resized)``; the mask is all zeros for a sample
    without a mask file. Training, conversion and evaluation all read masks here.
    """
    if sample.mask_path is None:
        return np.zeros(image_hw, np.uint8), False
    mask = unit_mask_to_binary(read_mask(sample.mask_path), sample.mask_path, warn)
    return fit_mask_to_image(
        mask, image_hw, sample, known_defect=known_defect, resize_masks=resize_masks, warn=warn
    )


def load_ground_truth(
    sample: Sample,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    connectivity: int = DEFAULT_CONNECTIVITY,
    resize_masks: bool = False,
    known_defect: str = "",
    warn: Callable[[str], None] | None = None,
) -> GroundTruth:
    """Read a sample's mask and turn it into targets (in the image's native pixels).

    A sample without a mask has no targets. The mask is read by :func:`read_sample_mask`
    (integrity-checked, {0, 1} masks read as binary, the defect policy applied);
    ``mask_resized`` says whether it was resized to the image. ``warn`` receives each warning
    line (default: :func:`warnings.warn` with :class:`~irstd_bench.errors.DatasetDefectWarning`).
    """
    check_threshold(threshold)
    image_hw = image_size(sample.image_path)
    check_pixels(sample.image_path, image_hw)  # a decompression bomb is refused by name
    if sample.mask_path is None:
        return GroundTruth(sample=sample, targets=Targets.empty(image_hw))
    mask, resized = read_sample_mask(
        sample, image_hw, known_defect=known_defect, resize_masks=resize_masks, warn=warn
    )
    nonbinary = () if _is_binary_mask(mask) else tuple(int(v) for v in np.unique(mask[mask != 0]) if v != 255)
    targets = mask_to_targets(mask, threshold=threshold, connectivity=connectivity)
    return GroundTruth(sample=sample, targets=targets, nonbinary_values=nonbinary, mask_resized=resized)
