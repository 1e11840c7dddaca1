"""YOLO (Ultralytics / YOLOv5 style) dataset: writer and reader.

Layout under ``OUT/yolo``, one folder per split family (the split file's folder:
``idx_427``, ``50_50``, ``split_EFLNet``; ``default`` for split files at the root, ``all``
for every image)::

    <family>/data.yaml                   train/val/test folders, nc: 1, names: [target]
    <family>/images/<part>/<file>        symbolic link to the release's image (or a copy)
    <family>/labels/<part>/<stem>.txt    ``0 cx cy w h`` per target, normalised by the image
                                         size; an empty file for a background-only image
    <family>/<part>.txt                  the split's images in split order (``./images/<part>/<file>``)

Each split (``part``: ``train``, ``val``, ``test``...) has its own ``images/<part>`` and
``labels/<part>`` siblings, the layout of ultralytics' own datasets: ultralytics keeps one
label cache per labels folder (``labels/<part>.cache``), so training and validating never
rebuild each other's cache. ``data.yaml`` has no ``path`` key: ultralytics then takes the
folder holding the yaml as the dataset root, so the tree works wherever it is moved (an
explicit relative ``path`` is read against the working directory or ultralytics' datasets
folder by some versions).

Images are never hard-linked (editing an exported image must never change the release):
they are symbolic links to the release's files (absolute targets), or byte copies
(``--copy-images``), never re-encoded.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml

from irstd_bench._io import image_size
from irstd_bench.boxes import LABEL_EDGE_SLACK_PX, box_areas, box_centres, boxes_outside, from_yolo, to_yolo
from irstd_bench.convert._records import ImageRecord
from irstd_bench.errors import InputError
from irstd_bench.targets import Targets

#: Decimal places of the normalised coordinates: below 0.01 px of error up to 10 000 px images.
DECIMALS = 6
CLASS_NAME = "target"
#: Family folder of split files at the dataset root (IRSTD-1k's ``trainval.txt``).
ROOT_FAMILY = "default"
#: Family (and part) of the split of every image.
ALL = "all"
#: data.yaml roles in file order.
ROLES = ("train", "val", "test")


def split_location(split: str) -> tuple[str, str]:
    """``(family, part)`` folders of a split name: ``idx_427/test`` -> ``("idx_427", "test")``.

    A split file at the root goes to family :data:`ROOT_FAMILY`; ``all`` to ``("all", "all")``.
    Deeper names keep their folders joined by ``__`` (``a/b/test`` -> ``("a__b", "test")``).
    """
    from irstd_bench.convert._summary import split_file_name

    if split == ALL:
        return ALL, ALL
    family, sep, part = split.rpartition("/")
    return (split_file_name(family) if sep else ROOT_FAMILY), split_file_name(part)


def label_text(rec: ImageRecord) -> str:
    """The label file of one image: ``0 cx cy w h`` lines, normalised to ``[0, 1]``."""
    lines = []
    for cx, cy, w, h in to_yolo(np.asarray(rec.boxes).reshape(-1, 4), (rec.height, rec.width)).tolist():
        lines.append(f"0 {cx:.{DECIMALS}f} {cy:.{DECIMALS}f} {w:.{DECIMALS}f} {h:.{DECIMALS}f}\n")
    return "".join(lines)


def list_text(records: Sequence[ImageRecord], part: str) -> str:
    """A split's image list file: ``./images/<part>/<file>`` lines, in split order."""
    return "".join(f"./images/{part}/{rec.file_name}\n" for rec in records)


def data_yaml(roles: Mapping[str, str | None], title: str, family: str) -> str:
    """``data.yaml`` text of one family; ``roles`` maps train/val/test to a part (or ``None``)."""
    lines = [
        f"# YOLO dataset of {title}, split family {family}, written by irstd-bench convert.\n",
        "# No 'path' key: the dataset root is the folder of this file. Labels in labels/<part>/.\n",
    ]
    if roles.get("val") is not None and roles["val"] == roles.get("test") and roles["val"] != "val":
        lines.append("# The family has no val split: its test split stands in for val.\n")
    for role in ROLES:
        part = roles.get(role)
        if part is not None:
            lines.append(f"{role}: {_yaml_scalar(f'images/{part}')}\n")
    lines += ["nc: 1\n", "names:\n", f"- {CLASS_NAME}\n"]
    return "".join(lines)


def _yaml_scalar(value: str) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).removesuffix("\n...\n").strip()


def place_image(source: Path, dest: Path, copy: bool) -> None:
    """Put the release's image file at ``dest``: a symbolic link, or a byte copy.

    ``source`` is absolute (the link's target; :func:`link_targets` resolves a folder once
    for all its images). A file system that refuses symbolic links gets a copy; the bytes are
    the same either way. Never a hard link: writing to the exported file must not change the
    release.
    """
    if not copy:
        try:
            os.symlink(source, dest)
            return
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise InputError(f"{source}: cannot link into {dest.parent} ({exc.strerror})") from None
    try:
        shutil.copyfile(source, dest)
    except OSError as exc:
        raise InputError(f"{source}: cannot copy into {dest.parent} ({exc.strerror})") from None


def link_targets(paths: Sequence[Path]) -> list[Path]:
    """Absolute link targets of image files: each folder resolved once (symbolic links and
    ``..`` removed), then the file name; in the order given."""
    folders: dict[Path, Path] = {}
    out = []
    for path in paths:
        path = Path(path)
        if path.parent not in folders:
            folders[path.parent] = path.parent.resolve()
        out.append(folders[path.parent] / path.name)
    return out


def read_yolo_ground_truth(yolo_dir: str | Path, split: str = "all") -> dict[str, Targets]:
    """Read a YOLO tree written by ``irstd-bench convert`` back into pixel boxes.

    Parameters
    ----------
    yolo_dir : path
        The ``yolo`` folder (one subfolder per split family).
    split : str
        A split name as given to convert (``idx_427/test``, ``all``).

    Returns
    -------
    dict
        ``{stem: Targets}`` in split order; ``boxes (N, 4)`` ``[x0, y0, x1, y1]`` pixels
        (de-normalised with the image's native size and rounded to whole pixels, int64),
        ``area_px`` the box areas, ``centroids`` the box centres; ``pixels`` is ``None``.
    """
    family, part = split_location(split)
    list_path = Path(yolo_dir) / family / f"{part}.txt"
    if not list_path.is_file():
        raise InputError(f"{list_path}: YOLO split list not found")
    out: dict[str, Targets] = {}
    for line in list_path.read_text(encoding="utf-8").splitlines():
        entry = line.strip()
        if not entry:
            continue
        image = (list_path.parent / entry[2:]) if entry.startswith("./") else Path(entry)
        h, w = image_size(image)
        label = list_path.parent / "labels" / part / f"{image.stem}.txt"
        out[image.stem] = read_yolo_label(label, (h, w))
    return out


def read_yolo_label(path: Path, hw: tuple[int, int]) -> Targets:
    """Read one YOLO label file (``0 cx cy w h`` lines, normalised) of an image of ``hw = (H, W)``.

    The one reader of YOLO ground truth: convert's trees (:func:`read_yolo_ground_truth`) and
    published box versions (``irstd-bench audit``). Boxes come back as ``[x0, y0, x1, y1]``
    pixels rounded to whole pixels (int64); ``area_px`` the box areas, ``centroids`` the box
    centres. A line that is not ``0 cx cy w h`` is an error naming the file and line.
    """
    h, w = hw
    if not path.is_file():
        raise InputError(f"{path}: YOLO label file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the YOLO label file ({exc.__class__.__name__})") from None
    rows, numbers = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls, cx, cy, bw, bh = int(fields[0]), *(float(v) for v in fields[1:5])
        except (ValueError, TypeError):
            raise InputError(f"{path}:{number}: expected 'class cx cy w h', got {line.strip()!r}") from None
        if cls != 0 or len(fields) != 5 or not all(np.isfinite([cx, cy, bw, bh])) or bw < 0 or bh < 0:
            raise InputError(f"{path}:{number}: expected 'class cx cy w h', got {line.strip()!r}")
        rows.append([cx, cy, bw, bh])
        numbers.append(number)
    exact = from_yolo(np.array(rows, np.float64).reshape(-1, 4), (h, w))
    outside = np.flatnonzero(boxes_outside(exact, (h, w), LABEL_EDGE_SLACK_PX))
    if outside.size:
        i = int(outside[0])
        raise InputError(
            f"{path}:{numbers[i]}: box {np.round(exact[i], 3).tolist()} px lies outside the {w}x{h} image "
            f"(more than {LABEL_EDGE_SLACK_PX:g} px past an edge)"
        )
    boxes = np.round(exact).astype(np.int64)
    return Targets(boxes=boxes, area_px=box_areas(boxes), centroids=box_centres(boxes), image_size=(h, w))
