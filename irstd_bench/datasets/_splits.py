"""Reading split files: one image stem a line."""

from __future__ import annotations

import warnings
from pathlib import Path

from irstd_bench._io import refuse_special_file
from irstd_bench.errors import DatasetDefectWarning, InputError

_STRIP_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


def read_split_file(path: Path) -> list[str]:
    """Return the image stems listed in a split file, in file order.

    LF and CRLF line ends both work; blank lines and surrounding white space are ignored, an
    image extension on an entry is dropped. Duplicates are kept once. An empty file is an
    error, since it is always a mistake in a release or a user's tree. An entry with folders
    (``images/Misc_1``) is read as its image name (``Misc_1``: images are looked up in the
    layout's image folder) with a :class:`~irstd_bench.errors.DatasetDefectWarning` naming the
    file; two entries naming one image from two different folders are an error (which is meant?).
    """
    path = Path(path)
    refuse_special_file(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: split file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a split file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read split file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: split file is not UTF-8 text") from None
    stems: list[str] = []
    written: dict[str, tuple[int, str]] = {}
    with_folders: list[tuple[int, str]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        entry = line.strip().replace("\\", "/")
        if not entry:
            continue
        folder, _, name = entry.rpartition("/")
        for suffix in _STRIP_SUFFIXES:
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
        if not name:
            raise InputError(f"{path}: line {line_no}: entry {entry!r} names no image")
        if folder:
            with_folders.append((line_no, entry))
        if name in written:
            first_line, first = written[name]
            first_folder = first.rpartition("/")[0]
            if folder and first_folder and folder != first_folder:
                raise InputError(
                    f"{path}: lines {first_line} and {line_no} ({first!r}, {entry!r}) both name image {name!r} "
                    "from different folders"
                )
            continue
        written[name] = (line_no, entry)
        stems.append(name)
    if not stems:
        raise InputError(f"{path}: split file is empty")
    if with_folders:
        line_no, entry = with_folders[0]
        warnings.warn(
            f"{path}: {len(with_folders)} entr{'y names' if len(with_folders) == 1 else 'ies name'} folders "
            f"(line {line_no}: {entry!r}); read as image names ({entry.rsplit('/', 1)[-1]!r}) in the image folder",
            DatasetDefectWarning,
            stacklevel=2,
        )
    return stems


def padded_image_id(entry: str, digits: int) -> str | None:
    """The release name of a short numeric image id, or ``None`` when ``entry`` is not one.

    NUDT-SIRST names its images by number with six digits (``000001.png``); the EFLNet authors'
    split lists name the same images with four (``0001``). An entry of 1 to ``digits - 1``
    ASCII digits is that number written with ``digits`` digits; anything else (a name, an id
    with ``digits`` or more digits, ``digits == 0``) gives ``None``.

    >>> padded_image_id("0001", 6), padded_image_id("1327", 6)
    ('000001', '001327')
    >>> padded_image_id("000001", 6), padded_image_id("Misc_1", 6), padded_image_id("0001", 0)
    (None, None, None)
    """
    if 0 < len(entry) < digits and entry.isascii() and entry.isdigit():
        return entry.zfill(digits)
    return None
