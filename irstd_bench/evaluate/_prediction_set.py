"""What a prediction path holds, mapped to the split's images and loaded one image at a time.

Formats (``--format``; ``auto`` detects them): ``masks`` / ``scoremaps`` (a folder with one
file per image), ``yolo`` (a folder of ``<stem>.txt``), ``coco`` (a results JSON) and ``csv``.
Folder files are named by the image stem; a suffix after the stem (``Misc_1_pixels0.png``,
``000001_pred.npy``) is tolerated when it starts with ``_``, ``-`` or ``.``. A map folder is
``masks`` when its files hold only two values (background 0 and foreground), else
``scoremaps``. COCO ``file_name`` is preferred; an ``image_id`` is resolved through the
``images`` table of ``--gt-coco`` (there is no guessing from split order). The values of each
format: :mod:`irstd_bench.evaluate._readers`.

COCO and CSV files are read and checked once, when the set is opened; folder files when
their image is scored.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from irstd_bench._io import IMAGE_SUFFIXES, listed_name, read_mask
from irstd_bench.errors import DatasetDefectWarning, InputError
from irstd_bench.evaluate._predictions import Prediction
from irstd_bench.evaluate._readers import (
    read_coco_results,
    read_csv_results,
    read_score_map_file,
    read_yolo_file,
)

#: Prediction formats accepted by ``--format``.
FORMATS = ("auto", "masks", "scoremaps", "coco", "yolo", "csv")
BOX_FORMATS = ("coco", "yolo", "csv")
MAP_FORMATS = ("masks", "scoremaps")

#: Files a mask / score-map folder may hold.
MAP_SUFFIXES = (*IMAGE_SUFFIXES, ".npy")

#: Characters that may separate an image stem from a file-name suffix (``Misc_1_pixels0``).
STEM_SEPARATORS = "_-."

#: Number of files ``auto`` inspects to tell masks from score maps.
KIND_SAMPLE_FILES = 16


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
        listed_name(path)
        stem = path.stem if stems is None else match_stem(path.stem, stems)
        if stem is None:
            not_in_split.append(path.name)
            continue
        if stem in files:
            raise InputError(f"{folder}: two prediction files for image {stem}: {files[stem].name}, {path.name}")
        files[stem] = path
    return files, not_in_split


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
        ``{stem: Prediction}`` (checked boxes, no image size yet) for ``coco`` and ``csv``.
    not_in_split : list of str
        Files or image names that are not images of the split (ignored).
    """

    path: Path
    format: str
    kind: str
    files: dict[str, Path] = field(default_factory=dict)
    detections: dict[str, Prediction] = field(default_factory=dict)
    not_in_split: list[str] = field(default_factory=list)

    def __contains__(self, stem: str) -> bool:
        return stem in self.files or stem in self.detections

    def task(self, stem: str):
        """A small picklable description of the prediction of ``stem`` (for worker processes):
        ``(format, payload)`` with the checked :class:`Prediction` or the file's path."""
        if self.format in ("coco", "csv"):
            return ("boxes", self.detections.get(stem))
        path = self.files.get(stem)
        return (self.format, None if path is None else str(path))

    def load(self, stem: str, image_size: tuple[int, int]) -> Prediction | None:
        """The prediction for ``stem`` (``None`` when there is none)."""
        return load_task(stem, self.task(stem), image_size, self.kind)


def load_task(stem: str, task, image_size: tuple[int, int] | None, kind: str) -> Prediction | None:
    """Load a prediction from :meth:`PredictionSet.task`; checks masks-run files are binary."""
    fmt, payload = task
    if payload is None:
        return None
    if fmt == "boxes":
        return replace(payload, image_size=None if image_size is None else tuple(image_size))
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


def _maps_kind(folder: Path, files: list[Path]) -> str:
    """``masks`` or ``scoremaps`` for a map folder, from up to :data:`KIND_SAMPLE_FILES` of its files.

    Score maps whose files all hold two values only, 0 and one other (an 8-bit mask saved as
    0/100), are what a mask with an unusual foreground value looks like: they are scored as
    score maps (100/255 = 0.39, below the default confidence) with a warning saying so.
    """
    step = max(1, len(files) // KIND_SAMPLE_FILES)
    two_valued: set[float] = set()
    example = None
    for path in files[::step][:KIND_SAMPLE_FILES]:
        prediction = read_score_map_file(path)
        if prediction.kind != "scoremaps":
            continue
        values = np.unique(prediction.score_map)
        if path.suffix.lower() == ".npy" or len(values) > 2 or values[0] != 0:
            return "scoremaps"
        two_valued.add(float(values[-1]))
        example = example or path
    if not two_valued:
        return "masks"
    if len(two_valued) == 1:
        value, stored = two_valued.pop(), read_mask(example).max()
        warnings.warn(
            f"{folder}: prediction images hold only the values 0 and {stored} (e.g. {example.name}): read as "
            f"score maps of {value:.3g}, not as masks (masks are 0/255 or 0/1); --format scoremaps confirms "
            "this reading",
            DatasetDefectWarning,
            stacklevel=3,
        )
    return "scoremaps"


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
        kind = found if found in MAP_FORMATS else _maps_kind(path, list(files.values()) or [path / n for n in not_in])
        return PredictionSet(path, kind, kind, files=files, not_in_split=not_in)
    if found == "yolo":
        files, not_in = _map_files(path, (".txt",), stem_set)
        if not files and not not_in:
            raise InputError(f"{path}: prediction folder has no .txt files")
        return PredictionSet(path, "yolo", "boxes", files=files, not_in_split=not_in)
    rows = read_coco_results(path, image_names) if found == "coco" else read_csv_results(path)
    not_in = [] if stem_set is None else sorted(s for s in rows if s not in stem_set)
    detections = {
        stem: Prediction.from_boxes(
            stem, [d[:4] for d in dets], [d[4] for d in dets], source=str(path), rows=[d[5] for d in dets]
        )
        for stem, dets in rows.items()
        if stem_set is None or stem in stem_set
    }
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
