"""Folder layouts of the public IRSTD releases, as they ship.

Each :class:`Layout` says where images and masks are, how a mask file is named from an image
stem, which split files the release has and which bare split names (``train``, ``test``)
stand for which file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """Where a dataset release keeps its files.

    Attributes
    ----------
    name : str
        Registry key (``nuaa``, ``nudt``, ``irstd1k``, ``sirstv2``, ``custom``).
    title : str
        The dataset's name as papers print it.
    image_dir, mask_dir : str
        Folders relative to the root.
    mask_suffix : str
        Appended to the image stem to name its mask (``Misc_1`` -> ``Misc_1_pixels0.png``).
    split_aliases : dict
        Bare split name -> split file path relative to the root, without ``.txt``.
    split_families : tuple of str
        Folders (relative to the root; ``""`` the root itself) whose ``*.txt`` files are splits.
        The first is the default family used for ``train``/``val``/``test``.
    source : str
        Where the release is published.
    image_id_digits : int
        The release names its images by number, zero-padded to this many digits (NUDT-SIRST:
        6, ``000001.png``); a split entry of fewer digits names the image of the same number
        (:func:`~irstd_bench.datasets.padded_image_id`). 0: entries are taken as they are.
    """

    name: str
    title: str
    image_dir: str
    mask_dir: str
    mask_suffix: str = ""
    mask_ext: str = ".png"
    split_families: tuple[str, ...] = ("",)
    split_aliases: dict[str, str] = field(default_factory=dict)
    source: str = ""
    aliases: tuple[str, ...] = ()
    marker: str = ""
    refinements: tuple[Layout, ...] = ()
    image_id_digits: int = 0

    def mask_name(self, stem: str) -> str:
        return f"{stem}{self.mask_suffix}{self.mask_ext}"

    def looks_like(self, root: Path) -> bool:
        """True when ``root`` has this layout's image and mask folders with a matching pair
        (and its ``marker`` file, when the layout has one)."""
        images, masks = root / self.image_dir, root / self.mask_dir
        if not (images.is_dir() and masks.is_dir()):
            return False
        if self.marker and not (root / self.marker).is_file():
            return False
        for image in sorted(images.glob("*.png"))[:20]:
            if (masks / self.mask_name(image.stem)).is_file():
                return True
        return False

    def for_root(self, root: Path) -> Layout:
        """The layout of this root: a more specific one of ``refinements`` when the root has its
        marks (the synthetic sample in the NUDT-SIRST layout), else this one."""
        for refined in self.refinements:
            if refined.looks_like(root):
                return refined.for_root(root)
        return self


@dataclass(frozen=True)
class BasicIRSTDLayout(Layout):
    """BasicIRSTD's tree: ``images/``, ``masks/`` (same names), ``img_idx/{train,test}_<NAME>.txt``.

    ``for_root`` reads ``<NAME>`` from the split files (``train_NUDT-SIRST.txt``): the title
    becomes ``NUDT-SIRST (BasicIRSTD layout)`` and ``train``/``test`` name those files.
    """

    def looks_like(self, root: Path) -> bool:
        return bool(self._names(root)) and super().looks_like(root)

    def _names(self, root: Path) -> list[str]:
        """Dataset names with both a train and a test file in ``img_idx/``, sorted."""
        folder = root / self.split_families[0]
        if not folder.is_dir():
            return []
        train, test = BASICIRSTD_PREFIXES["train"], BASICIRSTD_PREFIXES["test"]
        names = [p.stem[len(train) :] for p in folder.glob(f"{train}*.txt")]
        return sorted(n for n in names if (folder / f"{test}{n}.txt").is_file())

    def for_root(self, root: Path) -> Layout:
        names = self._names(root)
        if not names:
            return self
        name, family = names[0], self.split_families[0]
        aliases = {part: f"{family}/{prefix}{name}" for part, prefix in BASICIRSTD_PREFIXES.items()}
        return replace(self, title=f"{name} (BasicIRSTD layout)", split_aliases=aliases)


#: BasicIRSTD's split file names: ``img_idx/train_<NAME>.txt`` and ``img_idx/test_<NAME>.txt``.
BASICIRSTD_PREFIXES = {"train": "train_", "test": "test_"}

BASIC_IRSTD = BasicIRSTDLayout(
    name="basicirstd",
    title="BasicIRSTD layout",
    image_dir="images",
    mask_dir="masks",
    split_families=("img_idx",),
    source="https://github.com/XinyiYing/BasicIRSTD",
    aliases=("basic-irstd",),
)

#: File ``irstd-bench synth`` writes at the root of the synthetic sample.
SYNTH_MARKER = "synth_targets.json"

SYNTHETIC = Layout(
    name="synthetic",
    title="Synthetic sample (irstd-bench synth)",
    image_dir="images",
    mask_dir="masks",
    split_families=("50_50", "split_synth"),
    split_aliases={"train": "50_50/train", "test": "50_50/test"},
    source="irstd-bench synth",
    aliases=("synth",),
    marker=SYNTH_MARKER,
)


NUAA_SIRST = Layout(
    name="nuaa",
    title="NUAA-SIRST",
    image_dir="images",
    mask_dir="masks",
    mask_suffix="_pixels0",
    split_families=("idx_427", "50_50", "idx_320", "split_EFLNet"),
    split_aliases={
        "train": "idx_427/train",
        "val": "idx_427/val",
        "test": "idx_427/test",
        "trainval": "idx_427/trainval",
    },
    source="https://github.com/YimianDai/sirst",
    aliases=("sirst", "sirstv1", "nuaa-sirst"),
    refinements=(BASIC_IRSTD,),
)

NUDT_SIRST = Layout(
    name="nudt",
    title="NUDT-SIRST",
    image_dir="images",
    mask_dir="masks",
    split_families=("50_50", "split_synth", "split_EFLNet"),
    split_aliases={"train": "50_50/train", "test": "50_50/test"},
    source="https://github.com/YeRen123455/Infrared-Small-Target-Detection",
    aliases=("nudt-sirst",),
    # 000001.png ... 001327.png; the EFLNet authors' lists name them 0001 ... 1327.
    image_id_digits=6,
    refinements=(SYNTHETIC, BASIC_IRSTD),
)

IRSTD_1K = Layout(
    name="irstd1k",
    title="IRSTD-1k",
    image_dir="IRSTD1k_Img",
    mask_dir="IRSTD1k_Label",
    split_families=("", "split_EFLNet"),
    split_aliases={"train": "trainval", "trainval": "trainval", "test": "test"},
    source="https://github.com/RuiZhang97/ISNet",
    aliases=("irstd-1k", "irstd_1k"),
)

SIRST_V2 = Layout(
    name="sirstv2",
    title="SIRST v2",
    image_dir="mixed",
    mask_dir="annotations/masks",
    mask_suffix="_pixels0",
    split_families=("splits",),
    split_aliases={
        "train": "splits/train_full",
        "val": "splits/val_full",
        "test": "splits/test_full",
        "trainval": "splits/trainval_full",
    },
    source="https://github.com/YimianDai/open-sirst-v2",
    aliases=("sirst-v2", "open-sirst-v2"),
)

#: Layouts tried, in order, when none is forced (BasicIRSTD before NUDT-SIRST: both name masks
#: after their images; BasicIRSTD trees have ``img_idx/``).
RELEASE_LAYOUTS = (SIRST_V2, IRSTD_1K, NUAA_SIRST, BASIC_IRSTD, NUDT_SIRST)
#: Every layout a user can name with ``--dataset`` (besides ``custom``).
NAMED_LAYOUTS = (*RELEASE_LAYOUTS, SYNTHETIC)


def custom_layout(image_dir: str, mask_dir: str, mask_suffix: str = "", split_dir: str = "") -> Layout:
    """A layout for any ``images dir + masks dir + mask-name suffix`` tree."""
    return Layout(
        name="custom",
        title="custom",
        image_dir=image_dir,
        mask_dir=mask_dir,
        mask_suffix=mask_suffix,
        split_families=(split_dir,),
    )
