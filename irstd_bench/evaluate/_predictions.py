"""Predictions: the in-memory :class:`Prediction` and the readers of every prediction format.

Formats (``--format``; ``auto`` detects them):

- ``masks`` / ``scoremaps``: a folder with one file per image, named by the image stem; a
  suffix after the stem (``Misc_1_pixels0.png``, ``000001_pred.npy``) is tolerated when it starts
  with ``_``, ``-`` or ``.``. Files are ``.png .bmp .jpg .jpeg .tif .tiff`` or ``.npy``:
  8-bit images are scaled by 1/255 (an 8-bit file holding only 0 and 1 is a 0/1 mask), 16-bit
  by 1/65535, ``.npy`` must be bool, 0/1 integers or floats in ``[0, 1]``. A folder is
  ``masks`` when its files hold only two values (background 0 and foreground), else
  ``scoremaps``.
- ``coco``: a COCO results JSON ``[{"file_name" | "image_id", "bbox": [x, y, w, h], "score"}]``
  in native pixels. ``file_name`` is preferred; an ``image_id`` is resolved through the
  ``images`` table of ``--gt-coco`` (there is no guessing from split order).
- ``yolo``: a folder of ``<stem>.txt`` files, lines ``cls cx cy w h conf`` normalised by the
  native image size (an empty file is an image without detections).
- ``csv``: a file with header ``image,x0,y0,x1,y1,score`` (``image`` a stem or file name).

Scores must be finite and in ``[0, 1]``; a box must have ``x1 >= x0`` and ``y1 >= y0``. A box
reaching at most :data:`BOX_TOLERANCE_PX` beyond the image is clipped to it (and counted);
one reaching further is an error naming the file and row.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from irstd_bench._io import IMAGE_SUFFIXES, read_gray
from irstd_bench.errors import InputError

#: Prediction formats accepted by ``--format``.
FORMATS = ("auto", "masks", "scoremaps", "coco", "yolo", "csv")
BOX_FORMATS = ("coco", "yolo", "csv")
MAP_FORMATS = ("masks", "scoremaps")

#: Files a mask / score-map folder may hold.
MAP_SUFFIXES = (*IMAGE_SUFFIXES, ".npy")

#: Characters that may separate an image stem from a file-name suffix (``Misc_1_pixels0``).
STEM_SEPARATORS = "_-."

UINT8_MAX = 255
UINT16_MAX = 65535

#: How far (px) a box may reach beyond the image and still be accepted (it is clipped).
BOX_TOLERANCE_PX = 1.0

#: Number of files ``auto`` inspects to tell masks from score maps.
KIND_SAMPLE_FILES = 16

#: Columns of a CSV prediction file.
CSV_COLUMNS = ("image", "x0", "y0", "x1", "y1", "score")

YOLO_FIELDS = 6


@dataclass
class Prediction:
    """The prediction for one image: boxes with scores, or a score map.

    Attributes
    ----------
    stem : str
        Image stem (``Misc_1``).
    kind : {"boxes", "masks", "scoremaps"}
    boxes : ndarray (N, 4) float64 or None
        ``[x0, y0, x1, y1]`` in native pixels, pixel-edge convention.
    scores : ndarray (N,) float64 or None
        Confidence of each box, in ``[0, 1]``.
    score_map : ndarray (H, W) or None
        ``bool`` for masks, ``float32`` in ``[0, 1]`` for score maps.
    image_size : (H, W) or None
        Native size the prediction refers to (``None``: the ground truth's).
    source : str
        File it was read from (for messages).
    rows : ndarray (N,) or None
        Row of each box in ``source`` (line or entry number, for messages).
    """

    stem: str
    kind: str
    boxes: np.ndarray | None = None
    scores: np.ndarray | None = None
    score_map: np.ndarray | None = field(default=None, repr=False)
    image_size: tuple[int, int] | None = None
    source: str = ""
    rows: np.ndarray | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return self.source or f"prediction {self.stem}"

    @classmethod
    def from_boxes(
        cls,
        stem: str,
        boxes,
        scores,
        image_size: tuple[int, int] | None = None,
        *,
        source: str = "",
        rows=None,
    ) -> Prediction:
        """Boxes ``(N, 4)`` ``[x0, y0, x1, y1]`` in native pixels with scores ``(N,)`` in ``[0, 1]``.

        Examples
        --------
        >>> p = Prediction.from_boxes("Misc_1", [[10, 12, 13, 14]], [0.9], image_size=(256, 256))
        >>> p.kind, p.boxes.shape
        ('boxes', (1, 4))
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        where = source or f"prediction {stem}"
        row_ids = np.arange(len(boxes)) if rows is None else np.asarray(rows)
        if len(scores) != len(boxes):
            raise InputError(f"{where}: {len(boxes)} boxes but {len(scores)} scores")
        bad = ~np.isfinite(boxes).all(1)
        if bad.any():
            raise InputError(f"{where}: row {row_ids[np.argmax(bad)]}: box coordinates are not finite")
        _check_scores(scores, where, row_ids)
        bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"{where}: row {row_ids[i]}: box {boxes[i].tolist()} has x1 < x0 or y1 < y0")
        size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        return cls(stem, "boxes", boxes=boxes, scores=scores, image_size=size, source=source, rows=row_ids)

    @classmethod
    def from_score_map(cls, stem: str, score_map, *, source: str = "") -> Prediction:
        """A score map ``(H, W)`` in ``[0, 1]``; a ``bool`` or 0/1 map is a mask.

        Pixels with score ``>= conf`` are foreground at confidence ``conf``.

        Examples
        --------
        >>> Prediction.from_score_map("a", np.array([[0.0, 1.0]])).kind
        'masks'
        >>> Prediction.from_score_map("a", np.array([[0.2, 0.9]])).kind
        'scoremaps'
        """
        where = source or f"prediction {stem}"
        array = np.asarray(score_map)
        if array.ndim != 2:
            raise InputError(f"{where}: score map must be 2-D (H, W), got shape {array.shape}")
        if array.dtype == bool:
            return cls(stem, "masks", score_map=array, image_size=array.shape, source=source)
        if not np.issubdtype(array.dtype, np.number):
            raise InputError(f"{where}: score map has non-numeric dtype {array.dtype}")
        array = array.astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            raise InputError(f"{where}: score map contains NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise InputError(f"{where}: score map values must be in [0, 1], found [{low:g}, {high:g}]")
        if np.all((array == 0) | (array == 1)):
            return cls(stem, "masks", score_map=array == 1, image_size=array.shape, source=source)
        return cls(stem, "scoremaps", score_map=array, image_size=array.shape, source=source)

    @classmethod
    def empty(cls, stem: str, kind: str, image_size: tuple[int, int]) -> Prediction:
        """No detections."""
        if kind == "boxes":
            return cls.from_boxes(stem, np.zeros((0, 4)), np.zeros(0), image_size)
        return cls(stem, kind, score_map=np.zeros(image_size, bool), image_size=image_size)


def _check_scores(scores: np.ndarray, where: str, rows: np.ndarray) -> None:
    bad = ~np.isfinite(scores) | (scores < 0) | (scores > 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{where}: row {rows[i]}: score {float(scores[i])!r} is NaN or outside [0, 1]")


def clip_boxes(prediction: Prediction, image_size: tuple[int, int]) -> tuple[Prediction, int]:
    """Check a box prediction against the image; clip boxes within the tolerance.

    Returns the (possibly clipped) prediction and the number of clipped boxes. A box reaching
    more than :data:`BOX_TOLERANCE_PX` beyond the image raises :class:`InputError`.
    """
    boxes = prediction.boxes
    if boxes is None or len(boxes) == 0:
        return prediction, 0
    h, w = image_size
    limits = np.array([0, 0, w, h], np.float64)
    below = boxes[:, :2] < -BOX_TOLERANCE_PX
    above = boxes[:, 2:] > limits[2:] + BOX_TOLERANCE_PX
    low_side = boxes[:, 2:] < -BOX_TOLERANCE_PX
    high_side = boxes[:, :2] > limits[2:] + BOX_TOLERANCE_PX
    bad = below.any(1) | above.any(1) | low_side.any(1) | high_side.any(1)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"{prediction.where}: row {prediction.rows[i]}: box {boxes[i].tolist()} lies outside the "
            f"{w}x{h} image by more than {BOX_TOLERANCE_PX:g} px"
        )
    clipped = np.clip(boxes, 0, np.array([w, h, w, h], np.float64))
    changed = int(np.count_nonzero((clipped != boxes).any(1)))
    if not changed:
        return prediction, 0
    out = Prediction(
        prediction.stem,
        "boxes",
        boxes=clipped,
        scores=prediction.scores,
        image_size=prediction.image_size,
        source=prediction.source,
        rows=prediction.rows,
    )
    return out, changed


# --------------------------------------------------------------------------------------------
# Score-map files


def read_score_map_file(path: Path, stem: str | None = None) -> Prediction:
    """Read one mask / score-map file (see the module docstring for the value rules)."""
    path = Path(path)
    stem = stem if stem is not None else path.stem
    where = str(path)
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise InputError(f"{path}: cannot read .npy ({exc.__class__.__name__}: {exc})") from None
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
    image = read_gray(path)
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


def resize_nearest(score_map: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a mask or score map to ``image_size = (H, W)``."""
    h, w = image_size
    if score_map.dtype == bool:
        out = Image.fromarray(score_map.astype(np.uint8)).resize((w, h), Image.Resampling.NEAREST)
        return np.asarray(out).astype(bool)
    out = Image.fromarray(score_map.astype(np.float32), mode="F").resize((w, h), Image.Resampling.NEAREST)
    return np.asarray(out)


# --------------------------------------------------------------------------------------------
# File names -> image stems


def match_stem(name_stem: str, stems: set[str]) -> str | None:
    """The split stem a file stem names: itself, or its longest prefix followed by a separator."""
    if name_stem in stems:
        return name_stem
    for i in range(len(name_stem) - 1, 0, -1):
        if name_stem[i] in STEM_SEPARATORS and name_stem[:i] in stems:
            return name_stem[:i]
    return None


def _map_files(folder: Path, suffixes: tuple[str, ...], stems: set[str] | None) -> tuple[dict, list]:
    files: dict[str, Path] = {}
    not_in_split: list[str] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in suffixes or path.name.startswith("."):
            continue
        stem = path.stem if stems is None else match_stem(path.stem, stems)
        if stem is None:
            not_in_split.append(path.name)
            continue
        if stem in files:
            raise InputError(f"{folder}: two prediction files for image {stem}: {files[stem].name}, {path.name}")
        files[stem] = path
    return files, not_in_split


# --------------------------------------------------------------------------------------------
# Box files


def _stem_of(name: str) -> str:
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    stem = Path(base).stem if Path(base).suffix.lower() in IMAGE_SUFFIXES else base
    return stem


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def coco_image_names(path: Path) -> dict[int, str]:
    """``{image_id: stem}`` from the ``images`` table of a COCO JSON."""
    data = _read_json(Path(path))
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"{path}: a COCO file needs an 'images' list")
    out = {}
    for i, image in enumerate(data["images"]):
        try:
            out[int(image["id"])] = _stem_of(image["file_name"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: images[{i}] needs 'id' and 'file_name'") from None
    return out


def read_coco_results(path: Path, image_names: dict[int, str] | None = None) -> dict[str, list]:
    """``{stem: [(x0, y0, x1, y1, score, row), ...]}`` from a COCO results JSON."""
    path = Path(path)
    data = _read_json(path)
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        own = {int(im["id"]): _stem_of(im["file_name"]) for im in data.get("images", []) if "id" in im}
        image_names = {**own, **(image_names or {})}
        data = data["annotations"]
    if not isinstance(data, list):
        raise InputError(f"{path}: COCO results must be a JSON list of detections")
    out: dict[str, list] = {}
    for i, det in enumerate(data):
        if not isinstance(det, dict) or "bbox" not in det or "score" not in det:
            raise InputError(f"{path}: entry {i} needs 'bbox' and 'score'")
        if "file_name" in det:
            stem = _stem_of(det["file_name"])
        elif "image_id" in det:
            if not image_names:
                raise InputError(
                    f"{path}: entry {i} names its image by image_id only; pass --gt-coco (or write file_name)"
                )
            try:
                stem = image_names[int(det["image_id"])]
            except (KeyError, TypeError, ValueError):
                raise InputError(f"{path}: entry {i}: image_id {det['image_id']!r} not in the COCO images") from None
        else:
            raise InputError(f"{path}: entry {i} needs 'file_name' or 'image_id'")
        try:
            x, y, w, h = (float(v) for v in det["bbox"])
            score = float(det["score"])
        except (TypeError, ValueError):
            raise InputError(f"{path}: entry {i}: bbox must be 4 numbers and score a number") from None
        if w < 0 or h < 0:
            raise InputError(f"{path}: entry {i}: bbox {det['bbox']} has negative width or height")
        out.setdefault(stem, []).append((x, y, x + w, y + h, score, i))
    return out


def read_csv_results(path: Path) -> dict[str, list]:
    """``{stem: [(x0, y0, x1, y1, score, line), ...]}`` from a CSV prediction file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise InputError(f"{path}: CSV header must have columns {','.join(CSV_COLUMNS)} (missing {missing})")
    index = [header.index(c) for c in CSV_COLUMNS]
    out: dict[str, list] = {}
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        try:
            cells = [row[j] for j in index]
            x0, y0, x1, y1, score = (float(c) for c in cells[1:])
        except (IndexError, ValueError):
            raise InputError(f"{path}: line {line_no}: expected image,x0,y0,x1,y1,score numbers") from None
        out.setdefault(_stem_of(cells[0].strip()), []).append((x0, y0, x1, y1, score, line_no))
    return out


def read_yolo_file(path: Path, stem: str, image_size: tuple[int, int]) -> Prediction:
    """Read ``cls cx cy w h conf`` lines normalised by the native ``image_size = (H, W)``."""
    h, w = image_size
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
            values.append([float(v) for v in parts[1:]])
        except ValueError:
            raise InputError(f"{path}: line {line_no}: fields must be numbers") from None
        rows.append(line_no)
    arr = np.asarray(values, np.float64).reshape(-1, 5)
    if (arr[:, 2:4] < 0).any():
        i = int(np.argmax((arr[:, 2:4] < 0).any(1)))
        raise InputError(f"{path}: line {rows[i]}: negative width or height")
    cx, cy, bw, bh = arr[:, 0] * w, arr[:, 1] * h, arr[:, 2] * w, arr[:, 3] * h
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    return Prediction.from_boxes(stem, boxes, arr[:, 4], image_size, source=str(path), rows=rows)


# --------------------------------------------------------------------------------------------
# A prediction set: what a path holds, loaded image by image


@dataclass
class PredictionSet:
    """The predictions found at a path, mapped to image stems and loaded one image at a time.

    Attributes
    ----------
    path : Path
    format : str
        One of :data:`FORMATS` other than ``auto``.
    kind : {"boxes", "masks", "scoremaps"}
    files : dict
        ``{stem: file}`` for folder formats.
    detections : dict
        ``{stem: [(x0, y0, x1, y1, score, row), ...]}`` for ``coco`` and ``csv``.
    not_in_split : list of str
        Files or image names that are not images of the split (ignored).
    """

    path: Path
    format: str
    kind: str
    files: dict[str, Path] = field(default_factory=dict)
    detections: dict[str, list] = field(default_factory=dict)
    not_in_split: list[str] = field(default_factory=list)

    def __contains__(self, stem: str) -> bool:
        return stem in self.files or stem in self.detections

    def task(self, stem: str):
        """A small picklable description of the prediction of ``stem`` (for worker processes)."""
        if self.format in BOX_FORMATS and self.format != "yolo":
            return ("boxes", self.detections.get(stem), str(self.path))
        path = self.files.get(stem)
        return (self.format, None if path is None else str(path), None)

    def load(self, stem: str, image_size: tuple[int, int]) -> Prediction | None:
        """The prediction for ``stem`` (``None`` when there is none)."""
        return load_task(stem, self.task(stem), image_size, self.kind)


def load_task(stem: str, task, image_size: tuple[int, int], kind: str) -> Prediction | None:
    """Load a prediction from :meth:`PredictionSet.task`; checks masks-run files are binary."""
    fmt, payload, source = task
    if payload is None:
        return None
    if fmt == "boxes":
        arr = np.asarray(payload, np.float64).reshape(-1, 6)
        return Prediction.from_boxes(stem, arr[:, :4], arr[:, 4], image_size, source=source, rows=arr[:, 5].astype(int))
    if fmt == "yolo":
        return read_yolo_file(Path(payload), stem, image_size)
    prediction = read_score_map_file(Path(payload), stem)
    if kind == "masks" and prediction.kind != "masks":
        raise InputError(f"{payload}: not a binary mask (values other than 0 and 255); use --format scoremaps")
    return prediction


def detect_format(path: Path) -> str:
    """``coco``, ``csv``, ``yolo`` or ``maps`` (a mask / score-map folder) for a path."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: predictions not found")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".json":
            return "coco"
        if suffix == ".csv":
            return "csv"
        raise InputError(f"{path}: unknown prediction format {suffix!r} (use a .json, .csv or a folder; see --format)")
    try:
        suffixes = {p.suffix.lower() for p in path.iterdir() if p.is_file() and not p.name.startswith(".")}
    except OSError as exc:
        raise InputError(f"{path}: cannot list prediction folder ({exc.__class__.__name__})") from None
    has_txt = ".txt" in suffixes
    has_maps = bool(suffixes & set(MAP_SUFFIXES))
    if has_txt and has_maps:
        raise InputError(f"{path}: folder holds both .txt and image/.npy files; choose with --format")
    if has_txt:
        return "yolo"
    if has_maps:
        return "maps"
    raise InputError(f"{path}: prediction folder has no .txt, image or .npy files")


def _maps_kind(files: list[Path]) -> str:
    step = max(1, len(files) // KIND_SAMPLE_FILES)
    for path in files[::step][:KIND_SAMPLE_FILES]:
        if read_score_map_file(path).kind == "scoremaps":
            return "scoremaps"
    return "masks"


def open_predictions(
    path: str | Path,
    format: str = "auto",
    *,
    stems: list[str] | None = None,
    image_names: dict[int, str] | None = None,
) -> PredictionSet:
    """Find the predictions at ``path`` and map them to the split's image stems.

    Parameters
    ----------
    path : path
        A folder (masks, score maps, YOLO txt) or a file (COCO JSON, CSV).
    format : str
        One of :data:`FORMATS`.
    stems : list of str, optional
        Image stems of the split; files for other images are listed in ``not_in_split``.
        ``None`` accepts every file under its own stem.
    image_names : dict, optional
        ``{image_id: stem}`` (from ``--gt-coco``) to resolve COCO ``image_id``.
    """
    path = Path(path)
    if format not in FORMATS:
        raise InputError(f"unknown prediction format {format!r} (known: {', '.join(FORMATS)})")
    found = detect_format(path) if format == "auto" else format
    if found in (*MAP_FORMATS, "maps", "yolo") and not path.is_dir():
        raise InputError(f"{path}: --format {found} needs a folder")
    if found in ("coco", "csv") and not path.is_file():
        raise InputError(f"{path}: --format {found} needs a file")
    stem_set = None if stems is None else set(stems)
    if found in ("maps", *MAP_FORMATS):
        files, not_in = _map_files(path, MAP_SUFFIXES, stem_set)
        if not files and not not_in:
            raise InputError(f"{path}: prediction folder has no image or .npy files")
        kind = found if found in MAP_FORMATS else _maps_kind(list(files.values()) or [path / n for n in not_in])
        return PredictionSet(path, kind, kind, files=files, not_in_split=not_in)
    if found == "yolo":
        files, not_in = _map_files(path, (".txt",), stem_set)
        if not files and not not_in:
            raise InputError(f"{path}: prediction folder has no .txt files")
        return PredictionSet(path, "yolo", "boxes", files=files, not_in_split=not_in)
    detections = read_coco_results(path, image_names) if found == "coco" else read_csv_results(path)
    not_in = []
    if stem_set is not None:
        not_in = sorted(s for s in detections if s not in stem_set)
        detections = {s: d for s, d in detections.items() if s in stem_set}
    for stem, dets in detections.items():
        Prediction.from_boxes(
            stem, [d[:4] for d in dets], [d[4] for d in dets], source=str(path), rows=[d[5] for d in dets]
        )
    return PredictionSet(path, found, "boxes", detections=detections, not_in_split=not_in)


def read_predictions(
    path: str | Path,
    format: str = "auto",
    *,
    image_sizes: dict[str, tuple[int, int]] | None = None,
    image_names: dict[int, str] | None = None,
) -> list[Prediction]:
    """Read every prediction at ``path`` into memory.

    Parameters
    ----------
    path : path
        See :func:`open_predictions`.
    format : str
        One of :data:`FORMATS`.
    image_sizes : dict, optional
        ``{stem: (H, W)}`` native image sizes. Needed for YOLO files; when given, only these
        stems are read (others are ignored) and boxes are checked against the images.
    image_names : dict, optional
        ``{image_id: stem}`` to resolve COCO ``image_id``.

    Returns
    -------
    list of Prediction
        Sorted by stem.
    """
    stems = None if image_sizes is None else list(image_sizes)
    pset = open_predictions(path, format, stems=stems, image_names=image_names)
    if pset.format == "yolo" and image_sizes is None:
        raise InputError(f"{path}: YOLO predictions need the native image sizes (image_sizes=)")
    out = []
    for stem in sorted(set(pset.files) | set(pset.detections)):
        size = None if image_sizes is None else image_sizes[stem]
        out.append(pset.load(stem, size))
    return out
