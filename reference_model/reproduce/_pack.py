"""Pack a run's output into a few bounded files (what a device machine can send back).

:func:`pack` writes ``.tar.gz`` archives (or plain ``.tar`` for incompressible files such as
weights) of at most ``max_bytes`` each, starting a new part when one is full, and never more
files in the folder than ``max_files`` (files already there count). What does not fit is listed
in the returned :class:`PackResult`, never silently lost.
"""

from __future__ import annotations

import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from irstd_bench._outputs import TEMP_MARK, rename_noreplace, temp_path

#: Limits of what one device command sends back: files and bytes per file.
MAX_FILES = 8
MAX_FILE_BYTES = 16 * 2**20
#: A part is closed when its size passes this share of the limit (gzip buffers a little).
PART_FILL = 0.9


@dataclass
class PackResult:
    """Files written (in order) and members left out, ``"archive: member (reason)"``."""

    files: list[Path] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def _slots(folder: Path, max_files: int, result: PackResult) -> int:
    existing = [p for p in folder.iterdir() if p.is_file() and p not in result.files and TEMP_MARK not in p.name] \
        if folder.is_dir() else []
    return max_files - len(existing) - len(result.files)


def add_file(source: Path, folder: Path, result: PackResult, *, max_files: int = MAX_FILES,
             max_bytes: int = MAX_FILE_BYTES) -> None:
    """Copy one file into the pack folder (``RUNS.md``, the summary) within the limits."""
    source = Path(source)
    size = source.stat().st_size
    if size > max_bytes:
        result.left_out.append(f"{source.name} ({size} bytes > {max_bytes})")
        return
    if _slots(folder, max_files, result) < 1:
        result.left_out.append(f"{source.name} (no file left of {max_files})")
        return
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    tmp = temp_path(target)
    tmp.write_bytes(source.read_bytes())
    if _place(tmp, target, result):
        result.files.append(target)


def _place(tmp: Path, target: Path, result: PackResult) -> bool:
    """Rename ``tmp`` to ``target`` unless something is there (then it is kept, and noted)."""
    try:
        rename_noreplace(tmp, target)
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        result.left_out.append(f"{target.name} (a file of that name is already in {target.parent}; kept)")
        return False
    return True


def add_archive(
    name: str,
    members: Sequence[tuple[Path, str]],
    folder: Path,
    result: PackResult,
    *,
    compress: bool = True,
    max_files: int = MAX_FILES,
    max_bytes: int = MAX_FILE_BYTES,
) -> None:
    """Archive ``(path, name in archive)`` members as ``name.tar.gz`` (parts ``name-2.tar.gz``...).

    A part is closed before a member whose uncompressed size could take it past the limit. A
    member larger than a part alone is left out; so is everything once no file slot is left.
    """
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".tar.gz" if compress else ".tar"
    mode = "w:gz" if compress else "w"
    part, archive, path, tmp = 0, None, None, None
    for source, arcname in members:
        size = Path(source).stat().st_size
        if size > max_bytes * PART_FILL:
            result.left_out.append(f"{name}: {arcname} ({size} bytes, larger than a part)")
            continue
        if archive is not None and tmp.stat().st_size + size > max_bytes * PART_FILL:
            archive.close()
            archive = None
            if not _place(tmp, path, result):
                result.files.remove(path)
        if archive is None:
            if _slots(folder, max_files, result) < 1:
                result.left_out.append(f"{name}: {arcname} (no file left of {max_files})")
                continue
            part += 1
            path = folder / (f"{name}{suffix}" if part == 1 else f"{name}-{part}{suffix}")
            tmp = temp_path(path)
            archive = tarfile.open(tmp, mode)
            result.files.append(path)
        archive.add(str(source), arcname=arcname, recursive=False)
        archive.fileobj.flush()
    if archive is not None:
        archive.close()
        if not _place(tmp, path, result):
            result.files.remove(path)
    for path in result.files:
        if path.stat().st_size > max_bytes:  # cannot happen with PART_FILL headroom; checked anyway
            raise RuntimeError(f"{path}: {path.stat().st_size} bytes, over the {max_bytes}-byte limit")


def tree_members(root: Path, prefix: str) -> list[tuple[Path, str]]:
    """Every file under ``root`` as ``(path, prefix/relative path)``, sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [(p, f"{prefix}/{p.relative_to(root).as_posix()}") for p in sorted(root.rglob("*")) if p.is_file()]
