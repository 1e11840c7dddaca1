"""COCO detection JSON: the writer (the reader is :func:`irstd_bench.evaluate.read_coco_ground_truth`).

One file per split. Boxes are ``bbox = [x, y, w, h]`` in pixels with the pixel-edge convention
of :mod:`irstd_bench.targets` (``x = x0``, ``w = x1 - x0``; a one-pixel target at column 4 has
``x = 4, w = 1``), so ``x + w`` is the exclusive right edge, as COCO tools expect. ``area`` is
the target's pixel count (not ``w * h``); ``centroid`` (extra field) is its mean pixel centre, in
full float precision (a centroid rounded to 6 decimals moved a prediction exactly 3 px from a target
across ``centroid:3``'s boundary);
``segmentation`` is the target's pixels as compressed RLE (``iscrowd`` 0), so instance
segmentation tools (torchvision ``wrap_dataset_for_transforms_v2``, mmdetection) read masks too.

Image ids are the dataset's stable ids (:mod:`irstd_bench.datasets._image_ids`): the same
image has the same id in every split file and in ``predict``'s COCO results.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

from irstd_bench.boxes import box_convert
from irstd_bench.convert._records import ImageRecord

#: The one category of every file.
CATEGORY = {"id": 1, "name": "target", "supercategory": "target"}


def coco_document(
    records: Sequence[ImageRecord],
    description: str,
    image_ids: Mapping[str, int],
    first_annotation_ids: Mapping[str, int] | None = None,
) -> dict:
    """COCO ``{"images", "annotations", "categories", ...}`` of a split.

    Parameters
    ----------
    records : sequence of ImageRecord
        The split's images, in split order.
    description : str
        ``info.description``.
    image_ids : mapping
        ``{stem: id}``, the dataset's stable ids
        (:func:`irstd_bench.datasets.dataset_image_ids`), the same in every split file.
    first_annotation_ids : mapping, optional
        ``{stem: id of the image's first annotation}``; its targets take consecutive ids.
        Default: annotations numbered from 1 in record order.

    Each annotation carries ``bbox [x, y, w, h]``, ``area`` (pixel count), ``iscrowd`` 0,
    ``segmentation`` (compressed RLE of the target's pixels, when known) and ``centroid``.
    """
    images, annotations = [], []
    for rec in records:
        image_id = int(image_ids[rec.stem])
        images.append({"id": image_id, "file_name": rec.file_name, "width": rec.width, "height": rec.height})
        first = len(annotations) + 1 if first_annotation_ids is None else int(first_annotation_ids[rec.stem])
        rles = rec.rles or (None,) * rec.n_targets
        bboxes = box_convert(np.asarray(rec.boxes).reshape(-1, 4), "xyxy", "xywh").tolist()
        for k, (bbox, area, centroid, rle) in enumerate(zip(bboxes, rec.area_px, rec.centroids, rles, strict=True)):
            annotation = {
                "id": first + k,
                "image_id": image_id,
                "category_id": CATEGORY["id"],
                "bbox": bbox,
                "area": area,
                "iscrowd": 0,
                "centroid": [float(centroid[0]), float(centroid[1])],  # full precision (repr), never rounded
            }
            if rle is not None:
                annotation["segmentation"] = dict(rle)
            annotations.append(annotation)
    return {
        "info": {"description": description},
        "licenses": [],
        "categories": [dict(CATEGORY)],
        "images": images,
        "annotations": annotations,
    }


def annotation_ids(records: Sequence[ImageRecord], image_ids: Mapping[str, int]) -> dict[str, int]:
    """``{stem: first annotation id}``, counting targets in image-id order from 1.

    One numbering for a whole convert output, so a target has the same annotation id in
    every split file.
    """
    out, next_id = {}, 1
    for rec in sorted(records, key=lambda r: image_ids[r.stem]):
        out[rec.stem] = next_id
        next_id += rec.n_targets
    return out


def dumps_json(obj) -> str:
    """Deterministic JSON text: sorted keys, two-space indent, final newline."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
