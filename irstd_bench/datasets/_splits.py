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
