"""Stable COCO image ids: one integer per image for a whole dataset.

The rule: list every image file of the dataset's image folder (suffixes
:data:`irstd_bench._io.IMAGE_SUFFIXES`), take their stems, sort them as Python sorts strings
(Unicode code points: ``Misc_1 < Misc_10 < Misc_100 < Misc_2``) and number them from 1.
The id of an image therefore depends on the release's files only, never on a split: every
split file ``convert`` writes and every results file ``predict`` writes gives an image the
same ``image_id``, so ``pycocotools`` can pair them.

>>> stable_image_ids(["Misc_2", "Misc_10", "Misc_1"])
{'Misc_1': 1, 'Misc_10': 2, 'Misc_2': 3}
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from irstd_bench._io import IMAGE_SUFFIXES
from irstd_bench.errors import InputError

#: The first image id (COCO ids are positive).
FIRST_IMAGE_ID = 1


def stable_image_ids(stems: Iterable[str]) -> dict[str, int]:
    """``{stem: id}``: ids from :data:`FIRST_IMAGE_ID` in sorted stem order (repeats counted once)."""
    return {stem: i for i, stem in enumerate(sorted(set(stems)), start=FIRST_IMAGE_ID)}


def folder_image_ids(image_dir: str | Path) -> dict[str, int]:
    """Stable ids of every image file in ``image_dir`` (hidden files ignored)."""
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise InputError(f"{image_dir}: image folder not found")
    return stable_image_ids(
        p.stem
        for p in image_dir.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def dataset_image_ids(dataset) -> dict[str, int]:
    """Stable ids of a :class:`~irstd_bench.datasets.Dataset` (its whole image folder)."""
    return folder_image_ids(dataset.image_dir)

