"""A published box version on disk: which file holds which image's boxes, read with irstd-bench's readers.

Formats (``--format``):

- ``yolo``: a folder of ``<name>.txt`` files (not searched recursively), ``0 cx cy w h`` lines
  normalised by the image size (:func:`irstd_bench.convert.read_yolo_label`, boxes rounded to
  whole pixels). An image without a file has no boxes (YOLO's convention for background images);
- ``coco``: a COCO JSON (:func:`irstd_bench.convert.read_coco_ground_truth`, the one COCO
  reader); an image not in its ``images`` table has no boxes;
- ``voc``: a folder of Pascal VOC ``<name>.xml`` files, or a VOC tree with ``Annotations/``
  (:func:`irstd_bench.convert.read_voc_file`: ``x0 = xmin - 1``, ``x1 = xmax``).

Names become image stems by the dataset's one rule, :meth:`irstd_bench.datasets.Dataset.image_stem`
(the EFLNet authors' ``0001.txt`` holds NUDT-SIRST's ``000001.png``). Two names of one image are
an error; names of no image of the dataset are listed (``names_without_image``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from irstd_bench.datasets import Dataset
from irstd_bench.errors import InputError
from irstd_bench.targets import Targets

#: Formats ``audit`` reads.
LABEL_FORMATS = ("yolo", "coco", "voc")


@dataclass
class BoxVersion:
    """The boxes of a published box version, by image stem of the dataset.

    Attributes
    ----------
    path : Path
    format : str
    names : dict
        ``{image stem: name in the version}`` (file stem or ``file_name`` stem).
    names_without_image : list of str
        Names that are no image of the dataset, sorted.
    """

    path: Path
    format: str
    names: dict[str, str] = field(default_factory=dict)
    names_without_image: list[str] = field(default_factory=list)
    _files: dict[str, Path] = field(default_factory=dict, repr=False)
    _targets: dict[str, Targets] = field(default_factory=dict, repr=False)

    def boxes(self, stem: str, image_hw: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int] | None]:
        """Boxes ``(N, 4)`` ``[x0, y0, x1, y1]`` pixels of image ``stem`` of size ``image_hw``,
        and the image size the version states (``None`` for YOLO, which states none).

        An image the version does not name has no boxes.
        """
        if stem not in self.names:
            return np.zeros((0, 4), np.int64), None
        if self.format == "yolo":
            from irstd_bench.convert import read_yolo_label

            return read_yolo_label(self._files[stem], image_hw).boxes, None
        targets = self._targets[stem]
        return targets.boxes, tuple(int(v) for v in targets.image_size)


def open_box_version(path: str | Path, fmt: str, ds: Dataset) -> BoxVersion:
    """Index the box version at ``path`` in format ``fmt`` against the images of ``ds``."""
    path = Path(path)
    if fmt not in LABEL_FORMATS:
        raise InputError(f"--format {fmt!r}: unknown (known: {', '.join(LABEL_FORMATS)})")
    version = BoxVersion(path=path, format=fmt)
    if fmt == "coco":
        from irstd_bench.convert import read_coco_ground_truth

        if not path.is_file():
            raise InputError(f"--labels {path}: COCO file not found")
        for name, targets in read_coco_ground_truth(path).items():
            _add(version, ds, name, targets=targets)
    elif fmt == "voc":
        from irstd_bench.convert import read_voc_file

        folder = path / "Annotations" if (path / "Annotations").is_dir() else path
        for file in _files(folder, ".xml"):
            name, targets = read_voc_file(file)
            _add(version, ds, name, targets=targets)
    else:
        for file in _files(path, ".txt"):
            _add(version, ds, file.stem, file=file)
    version.names_without_image.sort()
    return version


def _files(folder: Path, suffix: str) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"--labels {folder}: label folder not found")
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() == suffix and p.is_file() and not p.name.startswith(".")
    )
    if not files:
        raise InputError(f"--labels {folder}: no {suffix} label files")
    return files


def _add(version: BoxVersion, ds: Dataset, name: str, *, file: Path | None = None, targets: Targets | None = None):
    stem = ds.image_stem(name)
    if ds.image_file(stem) is None:
        version.names_without_image.append(name)
        return
    if stem in version.names:
        raise InputError(
            f"--labels {version.path}: {version.names[stem]!r} and {name!r} both name image {stem} of {ds.layout.title}"
        )
    version.names[stem] = name
    if file is not None:
        version._files[stem] = file
    if targets is not None:
        version._targets[stem] = targets
