"""Masks -> box annotations: COCO JSON, YOLO and Pascal VOC, with a summary of the dataset.

>>> from irstd_bench.convert import convert_dataset, read_coco_ground_truth
>>> result = convert_dataset("../shared/datasets/NUAA-SIRST", "out/nuaa")     # doctest: +SKIP
>>> gt = read_coco_ground_truth("out/nuaa/coco/idx_427__test.json")          # doctest: +SKIP

Every target is a connected component of a binarised mask
(:func:`irstd_bench.targets.mask_to_targets`), with a tight box in pixels, pixel-edge
convention (``x1 = max column + 1``). Split names containing ``/`` are stored as file names
with ``__`` (``idx_427/test`` -> ``idx_427__test``), see :func:`split_file_name`.
"""

from irstd_bench.convert._convert import (
    FORMATS,
    SUMMARY_FILE,
    SUMMARY_SCHEMA,
    ConversionResult,
    convert_dataset,
)
from irstd_bench.convert._records import ImageRecord
from irstd_bench.convert._summary import SIZE_BINS, render_text, split_file_name
from irstd_bench.convert._voc import read_voc_file, read_voc_ground_truth
from irstd_bench.convert._yolo import read_yolo_ground_truth, read_yolo_label
from irstd_bench.evaluate._ground_truth import read_coco_ground_truth  # the one COCO reader

__all__ = [
    "FORMATS",
    "SIZE_BINS",
    "SUMMARY_FILE",
    "SUMMARY_SCHEMA",
    "ConversionResult",
    "ImageRecord",
    "convert_dataset",
    "read_coco_ground_truth",
    "read_voc_file",
    "read_voc_ground_truth",
    "read_yolo_ground_truth",
    "read_yolo_label",
    "render_text",
    "split_file_name",
]
