"""COCO detection JSON: the writer (the reader is :func:`irstd_bench.evaluate.read_coco_ground_truth`).

One file per split. Boxes are ``bbox = [x, y, w, h]`` in pixels with the pixel-edge convention
of :mod:`irstd_bench.targets` (``x = x0``, ``w = x1 - x0``; a one-pixel target at column 4 has
``x = 4, w = 1``), so ``x + w`` is the exclusive right edge, as COCO tools expect. ``area`` is
the target's pixel count (not ``w * h``); ``centroid`` (extra field) is its mean pixel centre.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from irstd_bench.boxes import box_convert
from irstd_bench.convert._records import ImageRecord

#: The one category of every file.
CATEGORY = {"id": 1, "name": "target", "supercategory": "target"}


def coco_document(records: Sequence[ImageRecord], description: str) -> dict:
    """COCO ``{"images", "annotations", "categories", ...}`` of a split, ids from 1 in record order."""
    images, annotations = [], []
    for image_id, rec in enumerate(records, start=1):
        images.append({"id": image_id, "file_name": rec.file_name, "width": rec.width, "height": rec.height})
        bboxes = box_convert(np.asarray(rec.boxes).reshape(-1, 4), "xyxy", "xywh").tolist()
        for bbox, area, centroid in zip(bboxes, rec.area_px, rec.centroids, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY["id"],
                    "bbox": bbox,
                    "area": area,
                    "iscrowd": 0,
                    "centroid": [round(centroid[0], 6), round(centroid[1], 6)],
                }
            )
    return {
        "info": {"description": description},
        "licenses": [],
        "categories": [dict(CATEGORY)],
        "images": images,
        "annotations": annotations,
    }


def dumps_json(obj) -> str:
    """Deterministic JSON text: sorted keys, two-space indent, final newline."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
