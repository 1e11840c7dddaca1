"""The COCO ground-truth reader: a COCO JSON written by ``irstd-bench convert`` back into targets.

The one reader of COCO ground truth, used by ``eval --gt-coco`` and
:func:`irstd_bench.convert.read_coco_ground_truth`, so that the same targets give the same
numbers whether the ground truth is given as masks or as ``convert``'s COCO:

- ``bbox`` ``[x, y, w, h]`` (pixels, pixel-edge convention) gives the box;
- ``area`` (the target's pixel count written by ``convert``; ``w * h`` when absent) the size bin;
- ``segmentation`` (COCO RLE or polygons) the centroid of the distance matchers: its pixels' mean
  centre, computed by :func:`irstd_bench.targets.pixel_centroids` exactly as for a mask, so masks and
  ``convert``'s COCO give the same centroid to the last bit (a tie at a centroid matcher's distance
  is one verdict by either route); without a segmentation, ``centroid`` (``convert`` writes it in
  full precision), else the box centre. A ``centroid`` more than :data:`CENTROID_TOLERANCE_PX` from
  its segmentation's is named in a warning (the segmentation's is used);
- ``segmentation`` (COCO RLE or polygons), when every annotation of the file has one, gives
  the targets' pixels, and with them the pixel metrics (IoU, nIoU, Pd, Fa) of map predictions.

Values are checked strictly (integers, finite numbers, positive image sizes within the pixel
limit, non-negative box sizes) and so is the geometry: a box lies inside its image, an area is
at most its box's, a centroid lies inside its box; an error names the file, the entry and the value.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from irstd_bench._io import check_pixels
from irstd_bench.boxes import box_centres, box_convert, boxes_outside
from irstd_bench.errors import DatasetDefectWarning, InputError
from irstd_bench.evaluate._readers import (
    coco_images,
    is_number,
    json_box,
    json_integer,
    json_number,
    read_json,
)
from irstd_bench.targets import Targets, pixel_centroids

#: A stored ``centroid`` this far (px) from its segmentation's is reported: farther than the 6-decimal
#: rounding of older ``convert`` files (at most 0.71e-6 px), so only a centroid of other pixels is.
CENTROID_TOLERANCE_PX = 1e-6

#: Slack (px) of the geometry checks, for coordinates written as decimal fractions.
GEOMETRY_SLACK_PX = 1e-6


def read_coco_ground_truth(path: str | Path) -> dict[str, Targets]:
    """``{stem: Targets}`` of the images of a COCO file, in ``images`` order.

    Returns
    -------
    dict
        ``boxes (N, 4)`` ``[x0, y0, x1, y1]`` pixels (int64 when every coordinate and area is
        whole, else float64), ``area_px (N,)``, ``centroids (N, 2)``, ``image_size = (height,
        width)``; ``pixels``/``pixel_labels`` from the segmentations, else ``None``.
    """
    path = Path(path)
    data = read_json(path)
    images = coco_images(data, path)
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        raise InputError(f"{path}: 'annotations' must be a list, got {type(annotations).__name__}")
    by_id: dict[int, str] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for i, (image_id, stem, image) in enumerate(images):
        where = f"{path}: images[{i}]"
        size = (_positive_int(image.get("height"), where, "height"), _positive_int(image.get("width"), where, "width"))
        check_pixels(where, size)  # an image of 10^12 x 10^12 px is no IRSTD image
        by_id[image_id] = stem
        sizes[stem] = size
    found: dict[str, list[dict]] = {stem: [] for stem in sizes}
    listed = _category_ids(data, path)
    categories: dict[int, int] = {}
    annotation_ids: dict[int, int] = {}
    for i, ann in enumerate(annotations):
        where = f"{path}: annotations[{i}]"
        if not isinstance(ann, dict) or "image_id" not in ann or "bbox" not in ann:
            raise InputError(f"{where} must be an object with 'image_id' and 'bbox'")
        if "id" in ann:  # two annotations of one id: which one is meant (pycocotools keeps one)?
            ann_id = json_integer(ann["id"], where, "id")
            if ann_id in annotation_ids:
                first = annotation_ids[ann_id]
                raise InputError(f"{where}: duplicate annotation id {ann_id} (also annotations[{first}])")
            annotation_ids[ann_id] = i
        if "category_id" in ann:  # one target class, as YOLO's class 0: an 'ignore' category is no target
            category = json_integer(ann["category_id"], where, "category_id")
            if listed is not None and category not in listed:
                raise InputError(f"{where}: category_id {category} is not in the file's categories {sorted(listed)}")
            categories.setdefault(category, i)
            if len(categories) > 1:
                raise InputError(
                    f"{where}: annotations of categories {sorted(categories)}; irstd-bench reads one target class "
                    "(keep the targets' annotations only)"
                )
        image_id = json_integer(ann["image_id"], where, "image_id")
        if image_id not in by_id:
            raise InputError(f"{where}: image_id {image_id} not in images")
        stem = by_id[image_id]
        found[stem].append(_annotation(ann, where, sizes[stem]))
    all_items = [a for items in found.values() for a in items]
    with_pixels = bool(all_items) and all(a["pixels"] is not None for a in all_items)
    return {stem: _targets(found[stem], sizes[stem], with_pixels, f"{path}: image {stem}") for stem in sizes}


def _category_ids(data: dict, path: Path) -> set[int] | None:
    """The ids of the file's ``categories`` table (``None`` when it has none)."""
    table = data.get("categories")
    if table is None:
        return None
    if not isinstance(table, list) or not all(isinstance(c, dict) and "id" in c for c in table):
        raise InputError(f"{path}: 'categories' must be a list of objects with an 'id'")
    return {json_integer(c["id"], f"{path}: categories", "id") for c in table}


def _positive_int(value, where: str, what: str) -> int:
    number = json_integer(value, where, what)
    if number <= 0:
        raise InputError(f"{where}: {what} must be a positive integer, got {value!r}")
    return number


def _annotation(ann: dict, where: str, image_size: tuple[int, int]) -> dict:
    x, y, w, h = json_box(ann["bbox"], where)
    if w < 0 or h < 0:
        raise InputError(f"{where}: bbox {ann['bbox']} has negative width or height")
    height, width = image_size
    slack = GEOMETRY_SLACK_PX
    if boxes_outside([x, y, x + w, y + h], image_size, slack)[0]:
        raise InputError(f"{where}: bbox {ann['bbox']} lies outside its {width}x{height} image")
    area = json_number(ann["area"], where, "area") if "area" in ann else w * h
    if area < 0:
        raise InputError(f"{where}: area {ann['area']!r} is negative")
    if area > w * h * (1 + slack) + slack:
        raise InputError(f"{where}: area {ann['area']!r} exceeds its bbox's {w:g}x{h:g} px")
    centroid = None
    if "centroid" in ann:
        value = ann["centroid"]
        if not isinstance(value, list) or len(value) != 2 or not all(is_number(v) for v in value):
            raise InputError(f"{where}: centroid must be a list of 2 numbers, got {value!r}")
        centroid = [json_number(v, where, "centroid") for v in value]
        inside = x - slack <= centroid[0] <= x + w + slack and y - slack <= centroid[1] <= y + h + slack
        if not inside:
            raise InputError(f"{where}: centroid {value!r} lies outside its bbox {ann['bbox']}")
    pixels = None
    if ann.get("segmentation"):
        pixels = _segmentation_pixels(ann["segmentation"], where, image_size)
        _check_pixels_in_box(pixels, [x, y, w, h], width, where)
    return {"box": [x, y, w, h], "area": area, "centroid": centroid, "pixels": pixels, "where": where}


def _segmentation_pixels(segmentation, where: str, image_size: tuple[int, int]) -> np.ndarray:
    """Flat pixel indices ``row * W + col`` (increasing) of a COCO RLE or polygon segmentation."""
    from pycocotools import mask as coco_mask

    h, w = image_size
    try:
        if isinstance(segmentation, dict):
            if list(segmentation.get("size", [])) != [h, w]:
                size = segmentation.get("size")
                raise InputError(f"{where}: segmentation size {size!r} is not the image's [{h}, {w}]")
            rle = segmentation
            if isinstance(rle.get("counts"), list):
                rle = coco_mask.frPyObjects(rle, h, w)
            elif isinstance(rle.get("counts"), str):
                rle = {"size": [h, w], "counts": rle["counts"].encode("ascii")}
            decoded = coco_mask.decode(rle)
        elif isinstance(segmentation, list) and all(isinstance(p, list) and len(p) >= 6 for p in segmentation):
            decoded = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(segmentation, h, w)))
        else:
            raise InputError(f"{where}: segmentation must be COCO RLE or polygons, got {segmentation!r:.80}")
    except InputError:
        raise
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise InputError(f"{where}: unreadable segmentation ({exc})") from None
    return np.flatnonzero(np.asarray(decoded, bool)).astype(np.int64)


def _check_pixels_in_box(pixels: np.ndarray, box: list[float], width: int, where: str) -> None:
    """A segmentation covers at least one pixel, all of them inside its ``bbox`` (1 px of slack
    for polygons rasterised at their edges): otherwise the file describes two different targets."""
    if not len(pixels):
        raise InputError(f"{where}: segmentation covers no pixel of the image")
    rows, cols = np.divmod(pixels, width)
    x, y, w, h = box
    if cols.min() < x - 1 or cols.max() + 1 > x + w + 1 or rows.min() < y - 1 or rows.max() + 1 > y + h + 1:
        raise InputError(f"{where}: segmentation reaches outside its bbox {box}")


def _targets(items: list[dict], image_size: tuple[int, int], with_pixels: bool, where: str) -> Targets:
    h, w = image_size
    boxes = box_convert(np.array([a["box"] for a in items], np.float64).reshape(-1, 4), "xywh", "xyxy")
    area = np.array([a["area"] for a in items], np.float64)
    if np.array_equal(boxes, np.round(boxes)) and np.array_equal(area, np.round(area)):
        boxes, area = boxes.astype(np.int64), area.astype(np.int64)
    centroids = box_centres(boxes)
    pixels = pixel_labels = None
    if with_pixels:
        labels = np.concatenate([np.full(len(a["pixels"]), i + 1, np.int32) for i, a in enumerate(items)] or [[]])
        flat = np.concatenate([a["pixels"] for a in items] or [[]]).astype(np.int64)
        order = np.argsort(flat, kind="stable")
        pixels, pixel_labels = flat[order], labels[order].astype(np.int32)
        if np.any(pixels[1:] == pixels[:-1]):
            raise InputError(f"{where}: two segmentations share pixels")
    for i, a in enumerate(items):
        if a["pixels"] is not None and len(a["pixels"]):
            rows, cols = np.divmod(a["pixels"], w)  # raster order, as a mask's pixels
            centroids[i] = pixel_centroids(np.ones(len(rows), np.int64), rows, cols, 1)[0]
            _check_stored_centroid(a, centroids[i])
        elif a["centroid"] is not None:
            centroids[i] = a["centroid"]
    return Targets(boxes, area, centroids, (h, w), pixels, pixel_labels)


def _check_stored_centroid(annotation: dict, from_pixels: np.ndarray) -> None:
    """Warn, naming the annotation, when its ``centroid`` is not its segmentation's mean pixel centre."""
    stored = annotation["centroid"]
    if stored is None:
        return
    gap = float(np.hypot(*(np.asarray(stored, np.float64) - from_pixels)))
    if gap > CENTROID_TOLERANCE_PX:
        warnings.warn(
            f"{annotation['where']}: centroid {stored} lies {gap:.3g} px from its segmentation's mean pixel "
            f"centre {from_pixels.tolist()}; the segmentation's is used",
            DatasetDefectWarning,
            stacklevel=4,
        )
