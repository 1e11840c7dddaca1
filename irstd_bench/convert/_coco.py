"""COCO detection JSON: writer and reader.

One file per split. Boxes are ``bbox = [x, y, w, h]`` in pixels with the pixel-edge convention
of :mod:`irstd_bench.targets` (``x = x0``, ``w = x1 - x0``; a one-pixel target at column 4 has
``x = 4, w = 1``), so ``x + w`` is the exclusive right edge, as COCO tools expect. ``area`` is
the target's pixel count (not ``w * h``); ``centroid`` (extra field) is its mean pixel centre;
``segmentation`` is the target's pixels as compressed RLE (``iscrowd`` 0), so instance
segmentation tools (torchvision ``wrap_dataset_for_transforms_v2``, mmdetection) read masks too.

Image ids are the dataset's stable ids (:mod:`irstd_bench.datasets._image_ids`): the same
image has the same id in every split file and in ``predict``'s COCO results.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from irstd_bench.convert._records import ImageRecord
from irstd_bench.errors import InputError
from irstd_bench.targets import Targets

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
        for k, (box, area, centroid, rle) in enumerate(
            zip(rec.boxes, rec.area_px, rec.centroids, rles, strict=True)
        ):
            x0, y0, x1, y1 = box
            annotation = {
                "id": first + k,
                "image_id": image_id,
                "category_id": CATEGORY["id"],
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": area,
                "iscrowd": 0,
                "centroid": [round(centroid[0], 6), round(centroid[1], 6)],
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


def read_coco_ground_truth(path: str | Path) -> dict[str, Targets]:
    """Read a COCO JSON written by ``irstd-bench convert`` back into targets.

    Parameters
    ----------
    path : path
        A COCO detection file (``images`` with ``id``, ``file_name``, ``width``, ``height``;
        ``annotations`` with ``image_id`` and ``bbox``).

    Returns
    -------
    dict
        ``{stem: Targets}`` in ``images`` order. ``boxes (N, 4)`` are ``[x0, y0, x1, y1]``
        pixels (int64 when every coordinate is whole, else float64), ``area_px (N,)`` from
        ``area`` (``w * h`` when absent), ``centroids (N, 2)`` from ``centroid`` (the box
        centre when absent), ``image_size = (height, width)``; ``pixels`` is ``None``.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: COCO file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"{path}: a COCO file needs an 'images' list")
    by_id: dict[int, str] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for i, image in enumerate(data["images"]):
        try:
            image_id = int(image["id"])
            stem = Path(str(image["file_name"])).stem
            size = (int(image["height"]), int(image["width"]))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: images[{i}] needs id, file_name, width and height") from None
        if image_id in by_id or stem in sizes:
            raise InputError(f"{path}: images[{i}]: duplicate image id {image_id} or file name {stem!r}")
        by_id[image_id] = stem
        sizes[stem] = size
    found: dict[str, list[tuple[list[float], float, list[float]]]] = {stem: [] for stem in sizes}
    for i, ann in enumerate(data.get("annotations", [])):
        try:
            stem = by_id[int(ann["image_id"])]
            x, y, w, h = (float(v) for v in ann["bbox"])
            area = float(ann.get("area", w * h))
            centroid = [float(v) for v in ann.get("centroid", (x + w / 2, y + h / 2))]
        except KeyError:
            raise InputError(f"{path}: annotations[{i}] has no image_id/bbox or an unknown image_id") from None
        except (TypeError, ValueError):
            raise InputError(f"{path}: annotations[{i}]: bad bbox, area or centroid") from None
        if w < 0 or h < 0 or len(centroid) != 2:
            raise InputError(f"{path}: annotations[{i}]: bad bbox {ann['bbox']}")
        found[stem].append(([x, y, x + w, y + h], area, centroid))
    return {stem: _targets(found[stem], sizes[stem]) for stem in sizes}


def _targets(items: list, image_size: tuple[int, int]) -> Targets:
    boxes = np.array([b for b, _, _ in items], np.float64).reshape(-1, 4)
    area = np.array([a for _, a, _ in items], np.float64)
    if np.array_equal(boxes, np.round(boxes)) and np.array_equal(area, np.round(area)):
        boxes, area = boxes.astype(np.int64), area.astype(np.int64)
    centroids = np.array([c for _, _, c in items], np.float64).reshape(-1, 2)
    return Targets(boxes=boxes, area_px=area, centroids=centroids, image_size=image_size)
