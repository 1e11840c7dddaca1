"""Ground truth from a COCO JSON written by ``irstd-bench convert`` (``--gt-coco``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from irstd_bench.errors import InputError
from irstd_bench.evaluate._predictions import _read_json, _stem_of
from irstd_bench.targets import Targets


def read_gt_coco(path: str | Path) -> list[tuple[str, Targets]]:
    """``[(stem, Targets)]`` of the images of a COCO file, in ``images`` order.

    Each annotation's ``bbox`` ``[x, y, w, h]`` (pixels, pixel-edge convention) becomes a box
    target; its ``area`` (the component's pixel count written by ``convert``) is kept for the
    size bins, ``w * h`` when absent; its centroid is the box centre. There is no label image,
    so the pixel metrics (IoU, nIoU, Pd, Fa) are not available with this ground truth.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"{path}: a COCO ground-truth file needs 'images' and 'annotations' lists")
    images: dict[int, tuple[str, int, int]] = {}
    order: list[int] = []
    for i, image in enumerate(data["images"]):
        try:
            image_id, stem = int(image["id"]), _stem_of(image["file_name"])
            h, w = int(image["height"]), int(image["width"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: images[{i}] needs id, file_name, width and height") from None
        if image_id in images:
            raise InputError(f"{path}: images[{i}]: duplicate image id {image_id}")
        images[image_id] = (stem, h, w)
        order.append(image_id)
    boxes: dict[int, list] = {i: [] for i in order}
    areas: dict[int, list] = {i: [] for i in order}
    for i, ann in enumerate(data.get("annotations", [])):
        try:
            image_id = int(ann["image_id"])
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: annotations[{i}] needs image_id and bbox [x, y, w, h]") from None
        if image_id not in images:
            raise InputError(f"{path}: annotations[{i}]: image_id {image_id} not in images")
        if w < 0 or h < 0 or not np.isfinite([x, y, w, h]).all():
            raise InputError(f"{path}: annotations[{i}]: bad bbox {ann['bbox']}")
        boxes[image_id].append([x, y, x + w, y + h])
        areas[image_id].append(float(ann.get("area", w * h)))
    out = []
    for image_id in order:
        stem, h, w = images[image_id]
        b = np.asarray(boxes[image_id], np.float64).reshape(-1, 4)
        out.append(
            (
                stem,
                Targets(
                    boxes=b,
                    area_px=np.asarray(areas[image_id], np.float64),
                    centroids=(b[:, :2] + b[:, 2:]) / 2,
                    image_size=(h, w),
                ),
            )
        )
    return out
