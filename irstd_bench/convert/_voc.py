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

from irstd_bench._io import check_pixels
from irstd_bench.boxes import LABEL_EDGE_SLACK_PX, boxes_outside
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
    root = _parse_xml(path)
    try:
        stem = Path(root.findtext("filename", "")).stem or path.stem
        size = (_count(root.findtext("size/height")), _count(root.findtext("size/width")))
        boxes, areas, centroids, classes = [], [], [], set()
        for obj in root.iter("object"):
            if obj.find("bndbox") is None:
                continue  # SIRST v2 marks a background-only image with an object without a box
            classes.add((obj.findtext("name") or "").strip())
            if len(classes) > 1:  # one target class, as YOLO's class 0 and COCO's one category
                raise InputError(
                    f"{path}: objects of classes {sorted(classes)}; irstd-bench reads one target class "
                    "(keep the targets' objects only)"
                )
            xmin, ymin, xmax, ymax = (_finite(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
            x0, y0, x1, y1 = xmin - 1, ymin - 1, xmax, ymax
            boxes.append([x0, y0, x1, y1])
            area = obj.findtext("area_px")
            areas.append(_finite(area) if area is not None else (x1 - x0) * (y1 - y0))
            if obj.find("centroid") is not None:
                centroids.append([_finite(obj.findtext("centroid/x")), _finite(obj.findtext("centroid/y"))])
            else:
                centroids.append([(x0 + x1) / 2, (y0 + y1) / 2])
    except InputError:
        raise
    except (TypeError, ValueError):
        raise InputError(f"{path}: VOC file needs size/width, size/height and numeric bndbox values") from None
    if min(size) <= 0:
        raise InputError(f"{path}: size {size[1]}x{size[0]} is not a positive width and height")
    check_pixels(path, size)
    box_array = np.array(boxes, np.float64).reshape(-1, 4)
    outside = np.flatnonzero(boxes_outside(box_array, size, LABEL_EDGE_SLACK_PX))
    if outside.size:
        i = int(outside[0])
        raise InputError(
            f"{path}: object {i + 1}: bndbox (xmin, ymin, xmax, ymax) "
            f"{[v + (1 if k < 2 else 0) for k, v in enumerate(boxes[i])]} is no box of its "
            f"{size[1]}x{size[0]} image (inverted, or more than {LABEL_EDGE_SLACK_PX:g} px past an edge)"
        )
    area_array = np.array(areas, np.float64)
    box_area = (box_array[:, 2] - box_array[:, 0]) * (box_array[:, 3] - box_array[:, 1])
    if np.any(area_array < 0) or np.any(area_array > box_area):
        i = int(np.flatnonzero((area_array < 0) | (area_array > box_area))[0])
        raise InputError(f"{path}: object {i + 1}: area_px {areas[i]:g} is not within its box's {box_area[i]:g} px")
    whole = np.array_equal(box_array, np.round(box_array)) and np.array_equal(area_array, np.round(area_array))
    return stem, Targets(  # whole pixels as int64, as convert writes them; fractions kept, never truncated
        boxes=box_array.astype(np.int64) if whole else box_array,
        area_px=area_array.astype(np.int64) if whole else area_array,
        centroids=np.array(centroids, np.float64).reshape(-1, 2),
        image_size=size,
    )


def _finite(text) -> float:
    """A number of the file; ``ValueError`` for text that is not a finite number (``nan``, ``inf``)."""
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(text)
    return value


def _count(text) -> int:
    """A whole number of the file (a size); ``ValueError`` for a fraction or anything else."""
    value = _finite(text)
    if not value.is_integer():
        raise ValueError(text)
    return int(value)


class _EntityDeclared(Exception):
    """An entity declaration met while scanning a VOC file."""


def _refuse_entity(name, *rest) -> None:
    raise _EntityDeclared(name)


def _parse_xml(path: Path) -> ET.Element:
    """The root element of a VOC file; an XML error (entity declarations included) is one line.

    Entities are never expanded: a first pass with expat (handlers on every entity declaration,
    internal or external, general or parameter, parsed or not) refuses a document that declares
    one, before anything else reads it; no file or URL it names is ever opened and no expansion
    grows. ElementTree then builds the tree of a document without entities.
    """
    from xml.parsers import expat

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: VOC file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    scan = expat.ParserCreate()
    scan.EntityDeclHandler = _refuse_entity
    scan.UnparsedEntityDeclHandler = _refuse_entity
    try:
        scan.Parse(data, True)
        return ET.fromstring(data)
    except _EntityDeclared as exc:
        raise InputError(
            f"{path}: declares the XML entity {exc.args[0]!r}; a VOC annotation needs none (none is expanded)"
        ) from None
    except (expat.ExpatError, ET.ParseError) as exc:
        raise InputError(f"{path}: not a valid XML file ({exc})") from None


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
