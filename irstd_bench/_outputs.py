"""What irstd-bench may write, and how: no user file is replaced, outputs appear whole or not at all.

Every command writes through this module. The rules (``docs/CONTRACTS.md``, Outputs):

Ownership by content, not by name
    A folder irstd-bench creates carries a manifest, :data:`MANIFEST_NAME`, listing the files it
    wrote and the command that wrote them. A single JSON file of ours carries a ``schema`` key of
    ours (``irstd-bench/results``...); other single files (prediction CSV / COCO lists) are
    recognised by a reader the caller passes. Nothing is ever recognised by file names or suffixes.

Replacing needs ``--force``, and even then only what irstd-bench wrote
    Like git refusing to overwrite untracked files: an existing output is replaced only with
    ``force``, and only when every file in it is listed in its manifest (a folder) or the file is
    recognisably ours. An empty folder holds nothing to lose and is used without ``force``.
    Every refusal names the path.

Outputs never hold or sit inside inputs
    An ``--out`` that is, or lies inside, an input (dataset root, predictions, masks) is refused;
    so is a folder ``--out`` that contains an input (replacing it would delete the input).

Whole or nothing
    Folders are built in a hidden temporary sibling and renamed into place; sets of files
    (``eval``'s JSON and two CSVs) are written to hidden temporaries first and renamed with
    SIGINT/SIGTERM/SIGHUP blocked, the last file of the set (the JSON) last; a failed rename
    rolls the set back. Temporaries are named ``.<target>.irstd-tmp-<host>-<pid>-<hex>`` so that
    a later run in the same folder recognises the leftovers of a killed run on this machine (its
    pid is dead) and removes them (:func:`sweep_stale_temps`). SIGKILL cannot be blocked: a kill -9 during the
    microseconds of the renames is the one case that can leave part of a set.

Modes
    Temporary files and folders are created with ``open``/``mkdir`` defaults, so they get the
    user's umask (``mkstemp``/``mkdtemp`` would give 0600/0700).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from irstd_bench.errors import InputError

#: The manifest irstd-bench writes in every folder it creates.
MANIFEST_NAME = ".irstd-bench-output.json"
MANIFEST_SCHEMA = "irstd-bench/output"
#: Marker inside temporary names: ``.<target>.irstd-tmp-<host>-<pid>-<hex>`` (``.old`` for a backup).
TEMP_MARK = ".irstd-tmp-"
_TEMP_RE = re.compile(
    r"^\.(?P<target>.+)\.irstd-tmp-(?P<host>[A-Za-z0-9]*)-(?P<pid>\d+)-(?P<token>[0-9a-f]+)(?P<old>\.old)?$"
)
#: Characters of the host name kept in temporary names (a shared file system may hold the
#: temporaries of several machines: only this machine's dead processes are recognised).
_HOST_CHARS = 16
#: Signals held back while a set of files is renamed into place.
_COMMIT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
#: Largest JSON file read to decide whether a file is ours (results files are far smaller).
MAX_OWNED_JSON_BYTES = 256 * 2**20


# --------------------------------------------------------------------------------------------
# Paths


def is_within(path: Path, other: Path) -> bool:
    """``path`` is ``other`` or lies inside it (symlinks resolved)."""
    a, b = Path(path).resolve(), Path(other).resolve()
    return a == b or b in a.parents


def refuse_inside_inputs(
    out: Path, inputs: Iterable[tuple[str, Path | None]], *, option: str = "--out", folder: bool = True
) -> None:
    """Refuse an output that is or lies inside an input, or (``folder``) that contains one.

    ``inputs`` are ``(label, path)`` pairs such as ``("dataset root", root)``; ``None`` paths are
    ignored. Raises :class:`InputError` naming both paths.
    """
    for label, path in inputs:
        if path is None:
            continue
        if is_within(out, path):
            raise InputError(f"{option} {out}: is or lies inside the {label} {path}; write outputs elsewhere")
        if folder and is_within(path, out):
            raise InputError(f"{option} {out}: contains the {label} {path}, which replacing it would delete")


def missing_ancestors(path: Path) -> list[Path]:
    """Ancestors of ``path`` that do not exist yet, deepest first."""
    missing = []
    parent = Path(path).absolute().parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    return missing


def make_parent(path: Path, option: str = "--out") -> list[Path]:
    """Create ``path``'s parent folders; return those created. Unwritable places are one-line errors."""
    created = missing_ancestors(path)
    try:
        Path(path).absolute().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot create its folder ({exc.strerror or exc})") from None
    return created


def remove_empty(folders: Iterable[Path]) -> None:
    """Remove the given folders (deepest first) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break


# --------------------------------------------------------------------------------------------
# Temporaries


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:_HOST_CHARS]


def temp_path(target: Path, *, backup: bool = False) -> Path:
    """A hidden sibling name for building ``target``: ``.<name>.irstd-tmp-<host>-<pid>-<hex>[.old]``."""
    target = Path(target)
    name = f".{target.name}{TEMP_MARK}{_host()}-{os.getpid()}-{secrets.token_hex(4)}{'.old' if backup else ''}"
    return target.absolute().parent / name


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def sweep_stale_temps(folder: Path) -> list[Path]:
    """Remove temporaries that runs killed earlier left in ``folder``; return what was removed.

    Only names matching our pattern, made on this host, whose process is gone are touched. A
    backup (``.old``) whose target is missing was being swapped when its run died: it is put
    back instead.
    """
    removed: list[Path] = []
    host = _host()
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if match is None or match["host"] != host or _pid_alive(int(match["pid"])):
            continue
        target = entry.parent / match["target"]
        try:
            if match["old"] and not target.exists() and not target.is_symlink():
                os.replace(entry, target)
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            continue
    return removed


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back (delivered on exit) while files are renamed."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _COMMIT_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# --------------------------------------------------------------------------------------------
# Ownership


#: Reports written before the manifest existed list their files in ``report.json`` (schema
#: ``irstd-bench/report``): that list is read as their manifest, so they can be rebuilt in place.
LEGACY_REPORT_FILE, LEGACY_REPORT_SCHEMA = "report.json", "irstd-bench/report"


def _legacy_report_manifest(folder: Path) -> dict | None:
    try:
        data = json.loads((Path(folder) / LEGACY_REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema") != LEGACY_REPORT_SCHEMA:
        return None
    files = data.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return {"schema": MANIFEST_SCHEMA, "command": "report", "files": [*files, LEGACY_REPORT_FILE]}


def read_manifest(folder: Path) -> dict | None:
    """The manifest of a folder irstd-bench wrote (or an older report's file list), or ``None``."""
    try:
        data = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return _legacy_report_manifest(folder)
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        return None
    files = data.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return data


def _files_under(folder: Path) -> list[str]:
    """Every non-folder entry under ``folder`` (symlinks not followed), as relative POSIX paths."""
    out = []
    for base, dirs, files in os.walk(folder, followlinks=False):
        rel = Path(base).relative_to(folder)
        for name in files + [d for d in dirs if (Path(base) / d).is_symlink()]:
            out.append((rel / name).as_posix())
    return sorted(out)


def check_folder_replaceable(out: Path, *, force: bool, option: str = "--out") -> None:
    """Raise unless ``out`` may be (re)placed: absent, empty, or (``force``) wholly our output."""
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise InputError(f"{option} {out}: exists and is not a folder; choose another {option}")
    try:
        entries = [e for e in out.iterdir() if e.name != MANIFEST_NAME]
    except OSError as exc:
        raise InputError(f"{option} {out}: cannot read the folder ({exc.strerror or exc})") from None
    manifest = read_manifest(out)
    if not entries and manifest is None:
        return
    if manifest is None:
        raise InputError(
            f"{option} {out}: folder exists and was not written by irstd-bench (no {MANIFEST_NAME}); "
            f"choose a new or empty {option}"
        )
    if not force:
        raise InputError(
            f"{option} {out}: holds an earlier irstd-bench {manifest.get('command', '')} output; "
            "use --force to replace it"
        )
    listed = set(manifest["files"]) | {MANIFEST_NAME}
    foreign = [rel for rel in _files_under(out) if rel not in listed]
    if foreign:
        raise InputError(
            f"{out / foreign[0]}: not written by irstd-bench (not in {MANIFEST_NAME}); --force replaces only "
            "irstd-bench's own files: move it away first"
        )


def json_schema_owner(*schemas: str) -> Callable[[Path], bool]:
    """A test for single JSON files of ours: a JSON object whose ``schema`` is one of ``schemas``."""

    def owned(path: Path) -> bool:
        try:
            if path.stat().st_size > MAX_OWNED_JSON_BYTES:
                return False
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and data.get("schema") in schemas

    return owned


def check_file_replaceable(
    path: Path, *, force: bool, owned: Callable[[Path], bool], option: str = "--out"
) -> None:
    """Raise unless ``path`` may be written: absent, or (``force``) a file ``owned`` recognises."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder; a file is written here")
    if path.is_symlink() or not owned(path):
        raise InputError(
            f"{path}: exists and was not written by irstd-bench; choose another {option} (nothing was written)"
        )
    if not force:
        raise InputError(f"{path}: exists (an earlier irstd-bench output); use --force to replace it")


# --------------------------------------------------------------------------------------------
# Writing


def write_manifest(folder: Path, command: str, extra: Mapping | None = None) -> None:
    """Write the manifest of ``folder`` listing every file now in it.

    It holds no time stamp: the same command on the same inputs writes the same bytes.
    """
    from irstd_bench import __version__

    manifest = {
        "schema": MANIFEST_SCHEMA,
        "schema_version": 1,
        "command": command,
        "irstd_bench_version": __version__,
        "files": [f for f in _files_under(folder) if f != MANIFEST_NAME],
        **dict(extra or {}),
    }
    (Path(folder) / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _swap_folder(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` onto ``out`` (replacing an earlier output), signals held back."""
    with signals_blocked():
        if out.exists():
            old = temp_path(out, backup=True)
            os.replace(out, old)
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)


@contextlib.contextmanager
def output_folder(
    out: Path,
    command: str,
    *,
    force: bool = False,
    inputs: Iterable[tuple[str, Path | None]] = (),
    option: str = "--out",
) -> Iterator[Path]:
    """Build an output folder in a hidden temporary sibling; on success it becomes ``out``.

    Checks first (nothing is created when they fail): ``out`` is not an input and holds none
    (:func:`refuse_inside_inputs`), and may be replaced (:func:`check_folder_replaceable`). The
    body fills the yielded folder; then the manifest is written and the folder renamed into
    place. An exception (or Ctrl-C) removes the temporary folder and any parent folders this
    call created, and leaves an earlier ``out`` as it was.
    """
    out = Path(out)
    refuse_inside_inputs(out, inputs, option=option)
    check_folder_replaceable(out, force=force, option=option)
    created = make_parent(out, option)
    sweep_stale_temps(out.absolute().parent)
    tmp = temp_path(out)
    try:
        tmp.mkdir()
    except OSError as exc:
        remove_empty(created)
        raise InputError(f"{option} {out}: cannot write there ({exc.strerror or exc})") from None
    try:
        yield tmp
        write_manifest(tmp, command)
        check_folder_replaceable(out, force=force, option=option)  # something may have appeared meanwhile
        _swap_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_empty(created)
        raise


def write_file_set(files: Mapping[Path, str | bytes], *, option: str = "--out") -> None:
    """Write several files as one set: all appear, or none (the last one is renamed last).

    Each file is written to a hidden temporary next to it, then all are renamed into place with
    signals held back; files they replace are kept as backups until the last rename succeeded,
    and put back if one fails. Text is written as UTF-8 with ``\\n`` line ends.
    """
    temps: dict[Path, Path] = {}
    created: list[Path] = []
    try:
        for path in files:
            created += make_parent(path, option)
            sweep_stale_temps(Path(path).absolute().parent)
        for path, data in files.items():
            tmp = temp_path(path)
            temps[Path(path)] = tmp
            payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            try:
                with open(tmp, "xb") as handle:
                    handle.write(payload)
            except OSError as exc:
                raise InputError(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None
        with signals_blocked():
            backups: list[tuple[Path, Path]] = []
            committed: list[Path] = []
            try:
                for path, tmp in temps.items():
                    if path.exists() or path.is_symlink():
                        backup = temp_path(path, backup=True)
                        os.replace(path, backup)
                        backups.append((path, backup))
                    os.replace(tmp, path)
                    committed.append(path)
            except BaseException:
                for path in committed:
                    path.unlink(missing_ok=True)
                for path, backup in backups:
                    os.replace(backup, path)
                raise
            for _, backup in backups:
                backup.unlink(missing_ok=True)
    except BaseException:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        remove_empty(created)
        raise
