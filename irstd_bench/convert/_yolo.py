"""YOLO (Ultralytics / YOLOv5 style) dataset: writer and reader.

Layout under ``OUT/yolo``::

    images/<stem>.png         the release's file, hard-linked (or copied), never re-encoded
    labels/<stem>.txt         one line ``0 cx cy w h`` per target, normalised by the image size;
                              an empty file for a background-only image
    <split>.txt               the images of a split, one ``./images/<file>`` a line
    data.yaml                 path, train/val/test lists, nc: 1, names: [target]

Trainers map ``.../images/x.png`` to ``.../labels/x.txt`` and resolve ``./`` entries of a
list file against the list file's folder, so the tree works where it lies.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from irstd_bench._io import image_size
from irstd_bench.boxes import box_areas, box_centres, from_yolo, to_yolo
from irstd_bench.convert._records import ImageRecord
from irstd_bench.errors import InputError
from irstd_bench.targets import Targets

#: Decimal places of the normalised coordinates: below 0.01 px of error up to 10 000 px images.
DECIMALS = 6
CLASS_NAME = "target"


def label_text(rec: ImageRecord) -> str:
    """The label file of one image: ``0 cx cy w h`` lines, normalised to ``[0, 1]``."""
    lines = []
    for cx, cy, w, h in to_yolo(np.asarray(rec.boxes).reshape(-1, 4), (rec.height, rec.width)).tolist():
        lines.append(f"0 {cx:.{DECIMALS}f} {cy:.{DECIMALS}f} {w:.{DECIMALS}f} {h:.{DECIMALS}f}\n")
    return "".join(lines)


def list_text(records: Sequence[ImageRecord]) -> str:
    """A split's image list file: ``./images/<file>`` lines, in split order."""
    return "".join(f"./images/{rec.file_name}\n" for rec in records)


def data_yaml(yolo_dir: Path, train: str, val: str, test: str | None) -> str:
    """``data.yaml`` text; ``train``/``val``/``test`` are list files relative to ``yolo_dir``."""
    lines = [
        f"# YOLO dataset written by irstd-bench convert; lists of images, labels in labels/\n"
        f"path: {_yaml_scalar(str(Path(yolo_dir).resolve()))}\n",
        f"train: {_yaml_scalar(train)}\n",
        f"val: {_yaml_scalar(val)}\n",
    ]
    if test is not None:
        lines.append(f"test: {_yaml_scalar(test)}\n")
    lines += ["nc: 1\n", "names:\n", f"- {CLASS_NAME}\n"]
    return "".join(lines)


def _yaml_scalar(value: str) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).removesuffix("\n...\n").strip()


def place_image(source: Path, dest: Path, link: bool) -> None:
    """Put the release's image file at ``dest``: a hard link, or a byte copy.

    A hard link that the file system refuses (another device, no permission) falls back to a
    copy; the bytes are the same either way.
    """
    if link:
        try:
            os.link(source, dest)
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP):
                raise InputError(f"{source}: cannot link into {dest.parent} ({exc.strerror})") from None
    try:
        shutil.copyfile(source, dest)
    except OSError as exc:
        raise InputError(f"{source}: cannot copy into {dest.parent} ({exc.strerror})") from None


def read_yolo_ground_truth(yolo_dir: str | Path, split: str = "all") -> dict[str, Targets]:
    """Read a YOLO tree written by ``irstd-bench convert`` back into pixel boxes.

    Parameters
    ----------
    yolo_dir : path
        The ``yolo`` folder (with ``images/``, ``labels/`` and the split lists).
    split : str
        A split's list file name without ``.txt`` (``all``, ``idx_427__test``), or a split name
        as given to convert (``idx_427/test``).

    Returns
    -------
    dict
        ``{stem: Targets}`` in list order; ``boxes (N, 4)`` ``[x0, y0, x1, y1]`` pixels
        (de-normalised with the image's native size and rounded to whole pixels, int64),
        ``area_px`` the box areas, ``centroids`` the box centres; ``pixels`` is ``None``.
    """
    from irstd_bench.convert._summary import split_file_name

    yolo_dir = Path(yolo_dir)
    list_path = yolo_dir / f"{split_file_name(split)}.txt"
    if not list_path.is_file():
        raise InputError(f"{list_path}: YOLO split list not found")
    out: dict[str, Targets] = {}
    for line in list_path.read_text(encoding="utf-8").splitlines():
        entry = line.strip()
        if not entry:
            continue
        image = (list_path.parent / entry[2:]) if entry.startswith("./") else Path(entry)
        h, w = image_size(image)
        label = image.parent.parent / "labels" / f"{image.stem}.txt"
        out[image.stem] = _read_label(label, (h, w))
    return out


def _read_label(path: Path, hw: tuple[int, int]) -> Targets:
    h, w = hw
    if not path.is_file():
        raise InputError(f"{path}: YOLO label file not found")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls, cx, cy, bw, bh = int(fields[0]), *(float(v) for v in fields[1:5])
        except (ValueError, TypeError):
            raise InputError(f"{path}:{number}: expected 'class cx cy w h', got {line.strip()!r}") from None
        if cls != 0 or len(fields) != 5:
            raise InputError(f"{path}:{number}: expected 'class cx cy w h', got {line.strip()!r}")
        rows.append([cx, cy, bw, bh])
    boxes = np.round(from_yolo(np.array(rows, np.float64).reshape(-1, 4), (h, w))).astype(np.int64)
    return Targets(boxes=boxes, area_px=box_areas(boxes), centroids=box_centres(boxes), image_size=(h, w))
