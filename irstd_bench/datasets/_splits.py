"""Reading split files: one image stem a line."""

from __future__ import annotations

from pathlib import Path

from irstd_bench.errors import InputError

_STRIP_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


def read_split_file(path: Path) -> list[str]:
    """Return the image stems listed in a split file, in file order.

    LF and CRLF line ends both work; blank lines and surrounding white space are ignored, an
    image extension on an entry is dropped. Duplicates are kept once. An empty file is an
    error, since it is always a mistake in a release or a user's tree.
    """
    path = Path(path)
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
    seen: set[str] = set()
    for line in text.splitlines():
        entry = line.strip()
        if not entry:
            continue
        entry = entry.replace("\\", "/").rsplit("/", 1)[-1]
        for suffix in _STRIP_SUFFIXES:
            if entry.lower().endswith(suffix):
                entry = entry[: -len(suffix)]
                break
        if entry not in seen:
            seen.add(entry)
            stems.append(entry)
    if not stems:
        raise InputError(f"{path}: split file is empty")
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
