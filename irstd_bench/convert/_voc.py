"""Pascal VOC XML: writer and reader.

Layout under ``OUT/voc``: ``Annotations/<stem>.xml`` (one ``<object>`` per target) and
``ImageSets/Main/<split>.txt`` (stems, one a line).

Box convention: classic VOC, 1-based and inclusive. A target covering columns ``c0..c1``
(0-based) has ``xmin = c0 + 1`` and ``xmax = c1 + 1``; with the pixel-edge box
``[x0, y0, x1, y1]`` of :mod:`irstd_bench.targets` that is ``xmin = x0 + 1, xmax = x1`` (same
for y). A one-pixel target at column 4 is ``xmin = xmax = 5``. The reader applies the inverse
(``x0 = xmin - 1, x1 = xmax``), so a write/read round trip returns the same pixel boxes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from irstd_bench.convert._records import ImageRecord
from irstd_bench.errors import InputError
from irstd_bench.targets import Targets


def voc_xml(rec: ImageRecord, folder: str) -> str:
    """The annotation file of one image (UTF-8 text, 2-space indent)."""
    parts = [
        "<annotation>\n",
        f"  <folder>{escape(folder)}</folder>\n",
        f"  <filename>{escape(rec.file_name)}</filename>\n",
        "  <size>\n",
        f"    <width>{rec.width}</width>\n",
        f"    <height>{rec.height}</height>\n",
        f"    <depth>{rec.depth}</depth>\n",
        "  </size>\n",
        "  <segmented>0</segmented>\n",
    ]
    for (x0, y0, x1, y1), area, (cx, cy) in zip(rec.boxes, rec.area_px, rec.centroids, strict=True):
        parts += [
            "  <object>\n",
            "    <name>target</name>\n",
            "    <pose>Unspecified</pose>\n",
            "    <truncated>0</truncated>\n",
            "    <difficult>0</difficult>\n",
            f"    <area_px>{area}</area_px>\n",
            f"    <centroid><x>{float(cx)!r}</x><y>{float(cy)!r}</y></centroid>\n",
            "    <bndbox>\n",
            f"      <xmin>{x0 + 1}</xmin>\n",
            f"      <ymin>{y0 + 1}</ymin>\n",
            f"      <xmax>{x1}</xmax>\n",
            f"      <ymax>{y1}</ymax>\n",
            "    </bndbox>\n",
            "  </object>\n",
        ]
    parts.append("</annotation>\n")
    return "".join(parts)


def read_voc_file(path: str | Path) -> tuple[str, Targets]:
    """Read one VOC annotation: ``(image stem, Targets)``.

    Boxes come back in the pixel-edge convention (``x0 = xmin - 1, x1 = xmax``), int64.
    ``area_px`` is ``<area_px>`` when present (written by convert), else the box area;
    ``centroids`` are ``<centroid>`` when present, else the box centres.

    Other VOC files read too, SIRST v2's official ``annotations/bboxes/<stem>.xml`` among them:
    ``<filename>`` with or without extension, and an ``<object>`` without ``<bndbox>`` (how
    SIRST v2 marks a background-only image) is no target. SIRST v2's official boxes are one
    pixel larger than convert's at the far edges (their ``xmax = x1 + 1``, ``ymax = y1 + 1``;
    ``datasets/sirst-v2.md``); they are read as written, not corrected.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise InputError(f"{path}: VOC file not found") from None
    except ET.ParseError as exc:
        raise InputError(f"{path}: not a valid XML file ({exc})") from None
    try:
        stem = Path(root.findtext("filename", "")).stem or path.stem
        size = (int(root.findtext("size/height")), int(root.findtext("size/width")))
        boxes, areas, centroids = [], [], []
        for obj in root.iter("object"):
            if obj.find("bndbox") is None:
                continue  # SIRST v2 marks a background-only image with an object without a box
            box = [int(float(obj.findtext(f"bndbox/{k}"))) for k in ("xmin", "ymin", "xmax", "ymax")]
            x0, y0, x1, y1 = box[0] - 1, box[1] - 1, box[2], box[3]
            boxes.append([x0, y0, x1, y1])
            area = obj.findtext("area_px")
            areas.append(int(area) if area is not None else (x1 - x0) * (y1 - y0))
            if obj.find("centroid") is not None:
                centroids.append([float(obj.findtext("centroid/x")), float(obj.findtext("centroid/y"))])
            else:
                centroids.append([(x0 + x1) / 2, (y0 + y1) / 2])
    except (TypeError, ValueError):
        raise InputError(f"{path}: VOC file needs size/width, size/height and numeric bndbox values") from None
    return stem, Targets(
        boxes=np.array(boxes, np.int64).reshape(-1, 4),
        area_px=np.array(areas, np.int64),
        centroids=np.array(centroids, np.float64).reshape(-1, 2),
        image_size=size,
    )


def read_voc_ground_truth(voc_dir: str | Path, split: str = "all") -> dict[str, Targets]:
    """Read the VOC tree written by convert for one split: ``{stem: Targets}`` in list order.

    ``split`` is the list file name under ``ImageSets/Main`` without ``.txt`` or a split name
    as given to convert (``idx_427/test``).
    """
    from irstd_bench.convert._summary import split_file_name

    voc_dir = Path(voc_dir)
    list_path = voc_dir / "ImageSets" / "Main" / f"{split_file_name(split)}.txt"
    if not list_path.is_file():
        raise InputError(f"{list_path}: VOC split list not found")
    out = {}
    for line in list_path.read_text(encoding="utf-8").splitlines():
        stem = line.strip()
        if stem:
            out[stem] = read_voc_file(voc_dir / "Annotations" / f"{stem}.xml")[1]
    return out
