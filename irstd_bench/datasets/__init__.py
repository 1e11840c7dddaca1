"""Dataset registry: the layouts of NUAA-SIRST, NUDT-SIRST, IRSTD-1k, SIRST v2 and custom trees.

>>> from irstd_bench.datasets import open_dataset, load_ground_truth
>>> ds = open_dataset("../shared/datasets/NUAA-SIRST")            # doctest: +SKIP
>>> gt = [load_ground_truth(s) for s in ds.samples("test")]        # doctest: +SKIP
"""

from irstd_bench.datasets._dataset import (
    KNOWN_DEFECTS,
    LAYOUTS,
    Dataset,
    GroundTruth,
    MaskSizeMismatch,
    Sample,
    fit_mask_to_image,
    load_ground_truth,
    open_dataset,
    read_sample_mask,
)
from irstd_bench.datasets._image_ids import dataset_image_ids, folder_image_ids, stable_image_ids
from irstd_bench.datasets._layouts import NAMED_LAYOUTS, RELEASE_LAYOUTS, Layout, custom_layout
from irstd_bench.datasets._splits import padded_image_id, read_split_file

__all__ = [
    "KNOWN_DEFECTS",
    "LAYOUTS",
    "NAMED_LAYOUTS",
    "RELEASE_LAYOUTS",
    "Dataset",
    "GroundTruth",
    "Layout",
    "MaskSizeMismatch",
    "Sample",
    "custom_layout",
    "dataset_image_ids",
    "fit_mask_to_image",
    "folder_image_ids",
    "load_ground_truth",
    "open_dataset",
    "padded_image_id",
    "read_sample_mask",
    "read_split_file",
    "stable_image_ids",
]
