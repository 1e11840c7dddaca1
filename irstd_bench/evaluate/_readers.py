"""Readers of the prediction files, with strict values.

- mask / score-map files (``.png .bmp .jpg .jpeg .tif .tiff`` or ``.npy``): 8-bit images are
  scaled by 1/255 (an 8-bit file holding only 0 and 1 is a 0/1 mask), 16-bit by 1/65535,
  ``.npy`` must be bool, 0/1 integers or floats in ``[0, 1]``; images are read by
  :func:`irstd_bench._io.read_mask` (one gray value per pixel: no colour, no varying alpha) and
  arrays by :func:`irstd_bench._io.read_array` (the pixel limit checked on the header);
- ``coco``: a COCO results JSON ``[{"file_name" | "image_id", "bbox": [x, y, w, h], "score"}]``
  in native pixels: ``bbox`` a list of four finite numbers, ``score`` a number (not a string
  or a boolean), ``file_name`` a non-empty string, ``image_id`` an integer resolved through a
  COCO ``images`` table (the file's own when it is a whole COCO document, else ``--gt-coco``'s
  or the dataset's); an ``images`` table may not hold an id or a file name twice;
- ``yolo``: ``<stem>.txt`` lines ``cls cx cy w h conf`` normalised by the native image size,
  ``cls`` the one class ``0`` (what ``convert`` writes: ``nc: 1``);
- ``csv``: header ``image,x0,y0,x1,y1,score`` (``image`` a stem or file name), UTF-8.

A value that breaks these rules is an :class:`~irstd_bench.errors.InputError` naming the file,
the entry or line, and the value.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from irstd_bench._csv import read_csv_cell, read_csv_rows
from irstd_bench._io import IMAGE_SUFFIXES, read_array, read_json, read_mask, refuse_special_file
from irstd_bench.boxes import box_convert, from_yolo
from irstd_bench.errors import InputError
from irstd_bench.evaluate._predictions import Prediction

UINT8_MAX = 255
UINT16_MAX = 65535

#: Columns of a CSV prediction file.
CSV_COLUMNS = ("image", "x0", "y0", "x1", "y1", "score")

#: Fields of a YOLO prediction line: ``cls cx cy w h conf``.
YOLO_FIELDS = 6
#: The one class of a YOLO file (``convert`` writes ``nc: 1``, ``names: [target]``).
YOLO_CLASS = 0


# --------------------------------------------------------------------------------------------
# Values


def is_number(value) -> bool:
    """A JSON number: ``int`` or ``float``, not a boolean, not a string."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_number(value, where: str, what: str) -> float:
    """A finite JSON number, else an error naming ``what`` and the value."""
    if not is_number(value) or not math.isfinite(value):
        raise InputError(f"{where}: {what} must be a finite number, got {value!r}")
    return float(value)


def json_integer(value, where: str, what: str) -> int:
    """A JSON integer (``3`` or ``3.0``), else an error: ``1.7`` is not read as 1."""
    if not is_number(value) or not math.isfinite(value) or float(value) != int(value):
        raise InputError(f"{where}: {what} must be an integer, got {value!r}")
    return int(value)


def json_box(value, where: str, what: str = "bbox") -> list[float]:
    """A list of four finite numbers (a string such as ``"2081"`` is not one)."""
    if not isinstance(value, list) or len(value) != 4 or not all(is_number(v) for v in value):
        raise InputError(f"{where}: {what} must be a list of 4 numbers, got {value!r}")
    if not all(math.isfinite(v) for v in value):
        raise InputError(f"{where}: {what} {value!r} is not finite")
    return [float(v) for v in value]


def stem_of(name) -> str:
    """The image stem a file name names (``a/b/Misc_1.png`` -> ``Misc_1``)."""
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    return Path(base).stem if Path(base).suffix.lower() in IMAGE_SUFFIXES else base


def image_file_name(value, where: str, what: str = "file_name") -> str:
    """The image stem a JSON ``file_name`` names; it must be a non-empty string (``null`` or ``7`` is not one)."""
    if not isinstance(value, str) or not stem_of(value).strip():
        raise InputError(f"{where}: {what} must be a non-empty string naming an image, got {value!r:.80}")
    return stem_of(value)


def coco_images(data, path: Path) -> list[tuple[int, str, dict]]:
    """The ``images`` table of a COCO document, checked: ``[(image_id, stem, entry), ...]``.

    Every entry is an object with an integer ``id`` and a ``file_name`` string; an id, or an
    image stem, given twice is an error (which entry would annotations mean?).
    """
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise InputError(f"{path}: a COCO file needs an 'images' list")
    out: list[tuple[int, str, dict]] = []
    ids: dict[int, int] = {}
    stems: dict[str, int] = {}
    for i, image in enumerate(images):
        where = f"{path}: images[{i}]"
        if not isinstance(image, dict) or "id" not in image:
            raise InputError(f"{where} must be an object with 'id' and 'file_name', got {image!r:.80}")
        image_id = json_integer(image["id"], where, "id")
        stem = image_file_name(image.get("file_name"), where)
        if image_id in ids:
            raise InputError(f"{where}: duplicate image id {image_id} (also images[{ids[image_id]}])")
        if stem in stems:
            raise InputError(f"{where}: duplicate image {stem!r} (also images[{stems[stem]}])")
        ids[image_id], stems[stem] = i, i
        out.append((image_id, stem, image))
    return out


def coco_image_names(path: Path) -> dict[int, str]:
    """``{image_id: stem}`` from the ``images`` table of a COCO JSON (:func:`coco_images`)."""
    path = Path(path)
    return {image_id: stem for image_id, stem, _ in coco_images(read_json(path), path)}


# --------------------------------------------------------------------------------------------
# Box files


def read_coco_results(path: Path, image_names: dict[int, str] | None = None) -> dict[str, list]:
    """``{stem: [(x0, y0, x1, y1, score, entry), ...]}`` from a COCO results JSON.

    A detection names its image by ``file_name`` or by ``image_id``, resolved through the file's
    own ``images`` table when it is a whole COCO document (``{"images", "annotations"}``), else
    through ``image_names`` (``--gt-coco``'s table or the dataset's ids).
    """
    path = Path(path)
    data = read_json(path)
    table, own_table = "the COCO images", False
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        # A whole COCO document: its annotations' image_id mean its own images table, whatever
        # --gt-coco or the dataset number the images.
        image_names = {image_id: stem for image_id, stem, _ in coco_images(data, path)}
        table, own_table = "the file's own images table", True
        data = data["annotations"]
    if not isinstance(data, list):
        raise InputError(f"{path}: COCO results must be a JSON list of detections")
    out: dict[str, list] = {}
    for i, det in enumerate(data):
        where = f"{path}: entry {i}"
        if not isinstance(det, dict) or "bbox" not in det or "score" not in det:
            raise InputError(f"{where} needs 'bbox' and 'score'")
        if "file_name" in det:
            stem = image_file_name(det["file_name"], where)
            if own_table and "image_id" in det:  # the file may not contradict itself
                image_id = json_integer(det["image_id"], where, "image_id")
                if image_names.get(image_id, stem) != stem:
                    raise InputError(
                        f"{where}: file_name {det['file_name']!r} but image_id {image_id} is "
                        f"{image_names[image_id]!r} in the file's own images table"
                    )
        elif "image_id" in det:
            image_id = json_integer(det["image_id"], where, "image_id")
            if not image_names:
                raise InputError(f"{where} names its image by image_id only; pass --gt-coco (or write file_name)")
            if image_id not in image_names:
                raise InputError(f"{where}: image_id {image_id} not in {table}")
            stem = image_names[image_id]
        else:
            raise InputError(f"{where} needs 'file_name' or 'image_id'")
        x, y, w, h = json_box(det["bbox"], where)
        score = json_number(det["score"], where, "score")
        if w < 0 or h < 0:
            raise InputError(f"{where}: bbox {det['bbox']} has negative width or height")
        out.setdefault(stem, []).append((x, y, w, h, score, i))
    for stem, dets in out.items():
        xyxy = box_convert([d[:4] for d in dets], "xywh", "xyxy").tolist()
        out[stem] = [(*box, d[4], d[5]) for box, d in zip(xyxy, dets, strict=True)]
    return out


def read_csv_results(path: Path) -> dict[str, list]:
    """``{stem: [(x0, y0, x1, y1, score, line), ...]}`` from a CSV prediction file."""
    path = Path(path)
    rows = read_csv_rows(path)
    header = [h.strip().lower() for h in (rows[0][1] if rows else [])]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise InputError(f"{path}: CSV header must have columns {','.join(CSV_COLUMNS)} (missing {missing})")
    index = [header.index(c) for c in CSV_COLUMNS]
    out: dict[str, list] = {}
    for line_no, row in rows[1:]:
        if not row or all(not cell.strip() for cell in row):
            continue
        try:
            cells = [row[j] for j in index]
            x0, y0, x1, y1, score = (float(c) for c in cells[1:])
        except (IndexError, ValueError):
            raise InputError(
                f"{path}: line {line_no}: expected image,x0,y0,x1,y1,score numbers, got {row!r:.120}"
            ) from None
        stem = image_file_name(read_csv_cell(cells[0].strip()), f"{path}: line {line_no}", "image")
        out.setdefault(stem, []).append((x0, y0, x1, y1, score, line_no))
    return out


def read_yolo_file(path: Path, stem: str, image_size: tuple[int, int]) -> Prediction:
    """Read ``cls cx cy w h conf`` lines normalised by the native ``image_size = (H, W)``."""
    refuse_special_file(Path(path))
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    values, rows = [], []
    for line_no, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != YOLO_FIELDS:
            raise InputError(f"{path}: line {line_no}: expected 'cls cx cy w h conf', got {len(parts)} fields")
        try:
            cls = int(parts[0])
        except ValueError:
            raise InputError(f"{path}: line {line_no}: class must be an integer, got {parts[0]!r}") from None
        if cls != YOLO_CLASS:
            raise InputError(
                f"{path}: line {line_no}: class {cls}: irstd-bench scores one class ({YOLO_CLASS}, the target); "
                "leave other classes out of the files"
            )
        try:
            values.append([float(v) for v in parts[1:]])
        except ValueError:
            raise InputError(f"{path}: line {line_no}: fields must be numbers, got {line.strip()!r}") from None
        rows.append(line_no)
    arr = np.asarray(values, np.float64).reshape(-1, 5)
    if (arr[:, 2:4] < 0).any():
        i = int(np.argmax((arr[:, 2:4] < 0).any(1)))
        raise InputError(f"{path}: line {rows[i]}: negative width or height")
    boxes = from_yolo(arr[:, :4], image_size)
    return Prediction.from_boxes(stem, boxes, arr[:, 4], image_size, source=str(path), rows=rows)


# --------------------------------------------------------------------------------------------
# Score-map files


def read_score_map_file(path: Path, stem: str | None = None) -> Prediction:
    """Read one mask / score-map file (see the module docstring for the value rules)."""
    path = Path(path)
    stem = stem if stem is not None else path.stem
    where = str(path)
    if path.suffix.lower() == ".npy":
        array = read_array(path)
        if array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
        if array.dtype == bool or np.issubdtype(array.dtype, np.floating):
            return Prediction.from_score_map(stem, array, source=where)
        if np.issubdtype(array.dtype, np.integer):
            if array.size and (array.min() < 0 or array.max() > 1):
                raise InputError(
                    f"{path}: integer .npy must be a 0/1 mask (found values up to {int(array.max())}); "
                    "save scores as float in [0, 1]"
                )
            return Prediction.from_score_map(stem, array == 1, source=where)
        raise InputError(f"{path}: unsupported .npy dtype {array.dtype}")
    image = read_mask(path)
    if image.dtype == np.float32:  # a float TIFF holds scores as they are
        return Prediction.from_score_map(stem, image, source=where)
    if image.dtype == np.uint8:
        nonzero = np.count_nonzero(image)
        for on in (UINT8_MAX, 1):  # a 0/255 or a 0/1 mask (counted, not sorted)
            foreground = image == on
            if np.count_nonzero(foreground) == nonzero:
                return Prediction(stem, "masks", score_map=foreground, image_size=image.shape, source=where)
        scaled = image.astype(np.float32) / UINT8_MAX
        return Prediction(stem, "scoremaps", score_map=scaled, image_size=image.shape, source=where)
    if image.size and (image.min() < 0 or image.max() > UINT16_MAX):
        raise InputError(f"{path}: 32-bit image values outside 0..65535")
    return Prediction.from_score_map(stem, image.astype(np.float32) / UINT16_MAX, source=where)
