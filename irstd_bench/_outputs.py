"""What irstd-bench may write, and how: no user file is replaced, outputs appear whole or not at all.

Every command writes through this module. The rules (``docs/CONTRACTS.md``, Outputs):

One ownership rule, by content, never by name
    A folder irstd-bench writes carries a manifest, :data:`MANIFEST_NAME`, listing the files
    (and folders) it wrote and the command. A single JSON file of ours carries a ``schema`` key
    of ours (``irstd-bench/results``...); a single file that cannot (a prediction CSV or COCO
    results list) has a sidecar manifest, ``.<name>.irstd-bench-output.json``, holding its
    SHA-256 (:func:`sidecar_owner`). Nothing is recognised by file names, suffixes, CSV
    headers or JSON keys.

Replacing needs ``--force``, and even then only what irstd-bench wrote
    Like git refusing to overwrite untracked files: an existing output is replaced only with
    ``force``, and only when everything in it is listed in its manifest (a folder: every file
    and every folder, all of them readable) or the file is provably ours. An empty folder holds
    nothing to lose and is used without ``force``. Every refusal names the path.

Checked at start, and again at the moment of writing
    The start check (:func:`check_folder_replaceable`, :func:`check_file_replaceable`) returns
    a :class:`Claim` recording what was found (its inode, size, time stamp). When the new
    output is put in place the earlier one is first renamed aside, compared with the claim and
    (a folder) checked again; only then is the new one renamed in, with ``RENAME_NOREPLACE``
    (or a hard link) so that nothing that appeared meanwhile is replaced. A changed or new
    path is refused (exit 2, one line) and the earlier output put back: two commands writing
    one ``--out`` at once never both succeed, and no result set is lost silently.

Outputs never hold or sit inside inputs
    An ``--out`` that is, or lies inside, an input (dataset root, predictions, masks) is refused;
    so is a folder ``--out`` that contains an input (replacing it would delete the input).

Whole or nothing
    Folders are built in a hidden temporary sibling and renamed into place
    (:func:`output_folder`); sets of files (``eval``'s JSON and two CSVs) are written to hidden
    temporaries and renamed with SIGINT/SIGTERM/SIGHUP blocked, the last file of the set (the
    JSON) last; a failed rename rolls the set back (:func:`write_file_set`). A folder written
    in place over a long run (a training run) writes each file the same way and lists in its
    manifest only the files it wrote (:class:`OwnedFolder`). Temporaries are named
    ``.<target>.irstd-tmp-<host>-<pid>-<hex>`` so that a later run in the same folder
    recognises the leftovers of a killed run on this machine (its pid is dead) and removes them
    (:func:`sweep_stale_temps`); a backup is removed only when it is provably ours, else kept.
    SIGKILL cannot be blocked: a kill -9 during the microseconds of the renames is the one case
    that can leave part of a set.

Modes
    Temporary files and folders are created with ``open``/``mkdir`` defaults, so they get the
    user's umask (``mkstemp``/``mkdtemp`` would give 0600/0700).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

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
#: Characters of the target's name kept in a temporary's name (255 bytes less the marks).
_TEMP_NAME_CHARS = 180
#: Signals held back while a set of files is renamed into place.
_COMMIT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
#: Largest JSON file read to decide whether a file is ours (results files are far smaller).
MAX_OWNED_JSON_BYTES = 256 * 2**20
#: ``renameat2`` flag: fail with EEXIST instead of replacing the target (Linux >= 3.15).
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


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
    """A hidden sibling name for building ``target``: ``.<name>.irstd-tmp-<host>-<pid>-<hex>[.old]``.

    A temporary (not a backup, whose name says where it goes back) keeps only the first
    :data:`_TEMP_NAME_CHARS` characters of a long ``name``, so that it fits the file system's
    255-byte limit whenever ``name`` does.
    """
    target = Path(target)
    base = target.name if backup else target.name[:_TEMP_NAME_CHARS]
    name = f".{base}{TEMP_MARK}{_host()}-{os.getpid()}-{secrets.token_hex(4)}{'.old' if backup else ''}"
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


def _is_empty_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode) and not os.listdir(path)
    except OSError:
        return False


def sweep_stale_temps(folder: Path) -> list[Path]:
    """Remove temporaries that runs killed earlier left in ``folder``; return what was removed.

    Only names matching our pattern, made on this host, whose process is gone are touched. A
    backup (``.old``) was an earlier output being replaced when its run died: it is put back
    when its target is missing (or an empty folder); otherwise it is removed only when it is
    provably ours (:func:`owned_backup`), and kept where it is when not.
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
            if match["old"]:
                if _is_empty_folder(target):
                    target.rmdir()
                if not target.exists() and not target.is_symlink():
                    rename_noreplace(entry, target)
                    continue
                if not owned_backup(entry):
                    continue
            _remove_path(entry)
            removed.append(entry)
        except OSError:
            continue
    return removed


def _remove_path(path: Path) -> None:
    """Remove a file, link or folder tree (links are removed, never followed)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


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
# Renaming without replacing


def _renameat2(src: Path, dst: Path) -> bool:
    """``renameat2(..., RENAME_NOREPLACE)``; ``False`` where the system or file system lacks it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = call(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise (FileExistsError if code == errno.EEXIST else OSError)(code, os.strerror(code), str(dst))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; :class:`FileExistsError` when ``dst`` exists (it is never replaced).

    ``renameat2(RENAME_NOREPLACE)`` where the system has it; else a hard link (files) or a
    plain rename after an existence check (folders: ``rename`` never replaces a non-empty
    folder, so at worst an empty folder made in the same microsecond is replaced).
    """
    src, dst = Path(src), Path(dst)
    if _renameat2(src, dst):
        return
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "File exists", str(dst))
    if src.is_dir() and not src.is_symlink():
        os.rename(src, dst)
        return
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:  # no hard links here: claim the name, then rename onto our own placeholder
        os.close(os.open(dst, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        os.replace(src, dst)
        return
    os.unlink(src)


# --------------------------------------------------------------------------------------------
# The ownership rule


def _identity(path: Path) -> tuple | None:
    """What is at ``path`` (not following links): kind, device, inode, and for files size and mtime."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISDIR(st.st_mode):
        return ("folder", st.st_dev, st.st_ino)
    return (stat.S_IFMT(st.st_mode), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


#: Reports written before the manifest existed list their files in ``report.json`` (schema
#: ``irstd-bench/report``): that list is read as their manifest, so they can be rebuilt in place.
LEGACY_REPORT_FILE, LEGACY_REPORT_SCHEMA = "report.json", "irstd-bench/report"


def _string_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _read_json(path: Path):
    try:
        if path.stat().st_size > MAX_OWNED_JSON_BYTES:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _legacy_report_manifest(folder: Path) -> dict | None:
    data = _read_json(Path(folder) / LEGACY_REPORT_FILE)
    if not isinstance(data, dict) or data.get("schema") != LEGACY_REPORT_SCHEMA or not _string_list(data.get("files")):
        return None
    return {"schema": MANIFEST_SCHEMA, "command": "report", "files": [*data["files"], LEGACY_REPORT_FILE]}


def read_manifest(folder: Path) -> dict | None:
    """The manifest of a folder irstd-bench wrote (or an older report's file list), or ``None``."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file() or path.is_symlink():
        return _legacy_report_manifest(folder)
    data = _read_json(path)
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA or not _string_list(data.get("files")):
        return None
    if not _string_list(data.get("folders", [])):
        return None
    return data


def _scan(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """Files (and links, never followed), folders, and folders that cannot be read or changed,
    under ``folder``, as relative POSIX paths (the unreadable ones include ``.`` for ``folder``)."""
    files: list[str] = []
    folders: list[str] = []
    blocked: list[str] = []
    pending = [PurePosixPath(".")]
    while pending:
        rel = pending.pop()
        path = Path(folder) / rel
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            blocked.append(rel.as_posix())
            continue
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    child = rel / entry.name
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(child.as_posix())
                        pending.append(child)
                    else:
                        files.append(child.as_posix())
        except OSError:
            blocked.append(rel.as_posix())
    return sorted(files), sorted(folders), sorted(blocked)


def _folder_problem(folder: Path, *, force: bool, option: str, shown: Path | None = None) -> str | None:
    """Why ``folder`` may not be replaced, or ``None`` when it may: absent, empty, or (``force``)
    an earlier output every file and folder of which its manifest lists, all readable."""
    shown = Path(shown if shown is not None else folder)
    try:
        st = os.lstat(folder)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return f"{option} {shown}: cannot be checked ({exc.strerror or exc})"
    if stat.S_ISLNK(st.st_mode):
        return f"{option} {shown}: is a symbolic link; choose another {option}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{option} {shown}: exists and is not a folder; choose another {option}"
    try:
        top = os.listdir(folder)
    except OSError as exc:
        return f"{option} {shown}: cannot read the folder ({exc.strerror or exc})"
    if not top:
        return None
    manifest = read_manifest(folder)
    if manifest is None:
        return (
            f"{option} {shown}: folder exists and was not written by irstd-bench (no {MANIFEST_NAME}); "
            f"choose a new or empty {option}"
        )
    if not force:
        command = manifest.get("command", "")
        return f"{option} {shown}: holds an earlier irstd-bench {command} output; use --force to replace it"
    files, folders, blocked = _scan(folder)
    if blocked:
        where = shown if blocked[0] == "." else shown / blocked[0]
        return (
            f"{where}: a folder irstd-bench cannot read or change, so it cannot check that it wrote what is "
            "inside; --force leaves it: make it readable and writable, or move it away"
        )
    listed = set(manifest["files"]) | {MANIFEST_NAME}
    listed_folders = set(manifest.get("folders", []))
    for name in listed:
        listed_folders.update(p.as_posix() for p in PurePosixPath(name).parents if p.as_posix() != ".")
    foreign = sorted([f for f in files if f not in listed] + [d for d in folders if d not in listed_folders])
    if foreign:
        return (
            f"{shown / foreign[0]}: not written by irstd-bench (not in {MANIFEST_NAME}); --force replaces only "
            "irstd-bench's own files: move it away first"
        )
    return None


def _file_problem(path: Path, *, force: bool, owned: Callable[[Path], bool], option: str) -> str | None:
    """Why file ``path`` may not be written, or ``None``: absent, or (``force``) a file ``owned`` proves ours."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return f"{option} {path}: cannot be checked ({exc.strerror or exc})"
    if stat.S_ISDIR(st.st_mode):
        return f"{option} {path}: is a folder; a file is written here"
    if not stat.S_ISREG(st.st_mode) or not owned(Path(path)):
        return f"{path}: exists and was not written by irstd-bench; choose another {option} (nothing was written)"
    if not force:
        return f"{path}: exists (an earlier irstd-bench output); use --force to replace it"
    return None


@dataclass(frozen=True)
class Claim:
    """What the start check found at an output path; :func:`_put_in_place` checks it again.

    ``identity`` is ``None`` when nothing was there; else the kind, inode, size and time stamp
    (:func:`_identity`) of the earlier output (or empty folder) that may be replaced.
    """

    path: Path
    folder: bool
    force: bool
    option: str
    identity: tuple | None

    @classmethod
    def absent(cls, path: Path, *, folder: bool = False, option: str = "--out") -> Claim:
        """A claim on a path that must still be free when written (exclusive create)."""
        return cls(Path(path), folder, False, option, None)


def _claim(path: Path, folder: bool, force: bool, option: str, problem: Callable[[], str | None]) -> Claim:
    try:
        before = _identity(path)
    except OSError as exc:  # a name too long, a parent that cannot be searched...
        raise InputError(f"{option} {path}: cannot be checked ({exc.strerror or exc})") from None
    message = problem()
    if message is not None:
        raise InputError(message)
    if _identity(path) != before:
        raise InputError(f"{option} {path}: changed while this command ran (another run?); nothing was written")
    return Claim(Path(path), folder, force, option, before)


def check_folder_replaceable(out: Path, *, force: bool, option: str = "--out") -> Claim:
    """Raise unless ``out`` may be (re)placed: absent, empty, or (``force``) wholly our output.

    Returns the :class:`Claim` to pass to the writer, which checks it again when writing.
    """
    out = Path(out)
    return _claim(out, True, force, option, lambda: _folder_problem(out, force=force, option=option))


def check_file_replaceable(
    path: Path, *, force: bool, owned: Callable[[Path], bool], option: str = "--out"
) -> Claim:
    """Raise unless ``path`` may be written: absent, or (``force``) a file ``owned`` proves ours.

    Returns the :class:`Claim` to pass to :func:`write_file_set`.
    """
    path = Path(path)
    return _claim(path, False, force, option, lambda: _file_problem(path, force=force, owned=owned, option=option))


def json_schema_owner(*schemas: str) -> Callable[[Path], bool]:
    """A test for single JSON files of ours: a JSON object whose ``schema`` is one of ``schemas``."""

    def owned(path: Path) -> bool:
        data = _read_json(Path(path))
        return isinstance(data, dict) and data.get("schema") in schemas

    return owned


#: Key of a JSON output of ours recording the SHA-256 of each other file of its set (the CSVs it
#: names), by the name it gives the file: such a file is ours while it holds what we wrote.
MEMBER_DIGESTS_KEY = "files_sha256"


def text_digest(data: str | bytes) -> str:
    """SHA-256 (hex) of a text as written (UTF-8) or of bytes."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else bytes(data)).hexdigest()


def _file_digest(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def set_member_owner(
    json_path: Path, json_owned: Callable[[Path], bool], names: Callable[[dict], Iterable]
) -> Callable[[Path], bool]:
    """A test for the other files of a set whose JSON (``json_path``) names them (a results JSON and
    its CSVs): ``path`` is ours when that JSON is ours, names it (``names(data)``: paths relative
    to the JSON's folder, or absolute) and records its current SHA-256 under that name
    (:data:`MEMBER_DIGESTS_KEY`). A user's edit makes it theirs. A JSON of an earlier version,
    which records no digests, vouches for the files it names by their names."""

    def owned(path: Path) -> bool:
        if not json_owned(json_path):
            return False
        data = _read_json(json_path)
        for name in names(data):
            if not isinstance(name, str) or not name:
                continue
            named = Path(name) if Path(name).is_absolute() else Path(json_path).absolute().parent / name
            if named.absolute() != Path(path).absolute():
                continue
            digests = data.get(MEMBER_DIGESTS_KEY)
            if digests is None:
                return True
            return isinstance(digests, dict) and digests.get(name) == _file_digest(path)
        return False

    return owned


def sidecar_path(path: Path) -> Path:
    """The sidecar manifest of a single file we write: ``.<name>.irstd-bench-output.json`` beside it."""
    path = Path(path)
    return path.parent / f".{path.name}{MANIFEST_NAME}"


def sidecar_text(path: Path, data: str | bytes, command: str) -> str:
    """The sidecar manifest of ``path`` about to hold ``data``: our schema, the name, its SHA-256."""
    from irstd_bench import __version__

    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "schema_version": 1,
        "command": command,
        "irstd_bench_version": __version__,
        "files": [Path(path).name],
        "sha256": {Path(path).name: hashlib.sha256(payload).hexdigest()},
    }
    return json.dumps(manifest, indent=2) + "\n"


def sidecar_owner(path: Path) -> bool:
    """``path`` is a file irstd-bench wrote: its sidecar manifest names it with its current SHA-256."""
    path = Path(path)
    data = _read_json(sidecar_path(path))
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        return False
    digests = data.get("sha256")
    if not isinstance(digests, dict) or not isinstance(digests.get(path.name), str):
        return False
    return _file_digest(path) == digests[path.name]


def owned_backup(path: Path) -> bool:
    """A backup a killed run left is provably ours: a folder wholly listed by its manifest, or a
    file that is a JSON of one of our schemas (other files are kept: their sidecar names another file)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        return read_manifest(path) is not None and _folder_problem(path, force=True, option="") is None
    data = _read_json(path) if path.is_file() and not path.is_symlink() else None
    return isinstance(data, dict) and str(data.get("schema", "")).startswith("irstd-bench/")


# --------------------------------------------------------------------------------------------
# Putting outputs in place


def _restore(backup: Path, target: Path) -> str:
    """Put ``backup`` back at ``target``; a note for an error message when that is impossible."""
    try:
        rename_noreplace(backup, target)
    except OSError:
        return f" (the earlier output is kept as {backup})"
    return ""


def _put_aside(claim: Claim) -> Path:
    """Rename the output ``claim`` found to a backup name, check it again there, return the backup.

    It must still be what the claim found (same inode, size and time stamp) and, a folder,
    still wholly ours (:func:`_folder_problem`); otherwise it is put back and
    :class:`InputError` raised. The caller holds signals back.
    """
    target, option = claim.path, claim.option
    backup = temp_path(target, backup=True)
    try:
        os.rename(target, backup)
    except FileNotFoundError:
        raise InputError(f"{option} {target}: was removed while this command ran (another run?)") from None
    problem = None
    if _identity(backup) != claim.identity:
        problem = f"{option} {target}: changed while this command ran (another run?); it was left as it is"
    elif claim.folder:
        problem = _folder_problem(backup, force=claim.force, option=option, shown=target)
    if problem is not None:
        raise InputError(problem + _restore(backup, target))
    return backup


def _put_in_place(tmp: Path, claim: Claim) -> Path | None:
    """Rename ``tmp`` to ``claim.path``, checking the claim again; return the backup of what it replaced.

    The earlier output (if the claim found one) is first put aside (:func:`_put_aside`); then
    ``tmp`` is renamed in without replacing anything that appeared meanwhile
    (:func:`rename_noreplace`). A mismatch puts the earlier output back and raises
    :class:`InputError`. The caller holds signals back and removes the returned backup once
    everything is in place.
    """
    target, option = claim.path, claim.option
    backup = _put_aside(claim) if claim.identity is not None else None
    try:
        rename_noreplace(tmp, target)
    except FileExistsError:
        kept = _restore(backup, target) if backup is not None else ""
        raise InputError(
            f"{option} {target}: appeared while this command ran (another run?); nothing was written{kept}"
        ) from None
    except OSError as exc:
        kept = _restore(backup, target) if backup is not None else ""
        raise InputError(f"{option} {target}: cannot write there ({exc.strerror or exc}){kept}") from None
    return backup


def _take_back(path: Path, ours: tuple | None) -> None:
    """Remove what was put at ``path`` if it is still ours (its identity ``ours``)."""
    aside = temp_path(path)
    try:
        os.rename(path, aside)
    except OSError:
        return
    if _identity(aside) == ours:
        _remove_path(aside)
    else:
        _restore(aside, path)


def manifest_text(command: str, files: Iterable[str], folders: Iterable[str] = (), extra: Mapping | None = None) -> str:
    """The text of a manifest listing ``files`` (and ``folders``) written by ``command``.

    It holds no time stamp: the same command on the same inputs writes the same bytes.
    """
    from irstd_bench import __version__

    folders = sorted(folders)
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "schema_version": 1,
        "command": command,
        "irstd_bench_version": __version__,
        "files": sorted(f for f in files if f != MANIFEST_NAME),
        **({"folders": folders} if folders else {}),
        **dict(extra or {}),
    }
    return json.dumps(manifest, indent=2) + "\n"


def write_manifest(folder: Path, command: str, extra: Mapping | None = None) -> None:
    """Write the manifest of a folder this process built privately (:func:`output_folder`'s
    temporary), listing every file and folder now in it. A folder written in place lists only
    the files it wrote (:class:`OwnedFolder`), never a listing of the folder."""
    files, folders, _ = _scan(Path(folder))
    (Path(folder) / MANIFEST_NAME).write_text(manifest_text(command, files, folders, extra), encoding="utf-8")


@contextlib.contextmanager
def output_folder(
    out: Path,
    command: str,
    *,
    force: bool = False,
    inputs: Iterable[tuple[str, Path | None]] = (),
    option: str = "--out",
    claim: Claim | None = None,
) -> Iterator[Path]:
    """Build an output folder in a hidden temporary sibling; on success it becomes ``out``.

    Checks first (nothing is created when they fail): ``out`` is not an input and holds none
    (:func:`refuse_inside_inputs`), and may be replaced (:func:`check_folder_replaceable`;
    ``claim``: the caller's earlier check, so that what changed since is refused). The
    body fills the yielded folder; then the manifest is written and the folder put in place,
    the claim checked again (:func:`_put_in_place`). An exception (or Ctrl-C) removes the
    temporary folder and any parent folders this call created, and leaves an earlier ``out``
    as it was.
    """
    out = Path(out)
    refuse_inside_inputs(out, inputs, option=option)
    if claim is None:
        claim = check_folder_replaceable(out, force=force, option=option)
    elif Path(claim.path) != out or not claim.folder:
        raise ValueError(f"output_folder: the claim is for {claim.path}, not the folder {out}")
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
        with signals_blocked():
            backup = _put_in_place(tmp, claim)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_empty(created)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def write_file_set(files: Mapping[Path, str | bytes], claims: Mapping[Path, Claim], *, option: str = "--out") -> None:
    """Write several files as one set: all appear, or none (the last one is renamed last).

    ``claims`` holds the start check of every path (:func:`check_file_replaceable`, or
    :meth:`Claim.absent` for a file that must be new). Each file is written to a hidden
    temporary next to it, then all are put in place with signals held back, each claim checked
    again (:func:`_put_in_place`); files they replace are kept as backups until the last one is
    in place, and put back if one fails. Text is written as UTF-8 with ``\\n`` line ends.
    """
    paths = [Path(p) for p in files]
    claims = {Path(p): c for p, c in claims.items()}
    missing = [p for p in paths if p not in claims]
    if missing:
        raise ValueError(f"write_file_set: no claim for {missing[0]}")
    temps: dict[Path, Path] = {}
    created: list[Path] = []
    try:
        for path in paths:
            created += make_parent(path, option)
            sweep_stale_temps(path.absolute().parent)
        for path, data in zip(paths, files.values(), strict=True):
            tmp = temp_path(path)
            temps[path] = tmp
            payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            try:
                with open(tmp, "xb") as handle:
                    handle.write(payload)
            except OSError as exc:
                raise InputError(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None
        placed: list[tuple[Path, Path | None, tuple | None]] = []
        with signals_blocked():
            try:
                for path, tmp in temps.items():
                    ours = _identity(tmp)
                    placed.append((path, _put_in_place(tmp, claims[path]), ours))
            except BaseException:
                for path, backup, ours in reversed(placed):
                    _take_back(path, ours)
                    if backup is not None:
                        _restore(backup, path)
                raise
        for _, backup, _ in placed:
            if backup is not None:
                backup.unlink(missing_ok=True)
    except BaseException:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                tmp.unlink()
        remove_empty(created)
        raise


def write_new_file(path: Path, data: str | bytes, *, option: str = "--out") -> None:
    """Write one file that must not exist yet (exclusive create): whatever is there is never replaced."""
    write_file_set({Path(path): data}, {Path(path): Claim.absent(path, option=option)}, option=option)


def remove_output(claim: Claim) -> None:
    """Delete the output ``claim`` found (an earlier output of ours, checked then), checking it again.

    It is renamed aside, compared with the claim and (a folder) checked again, then removed;
    any mismatch puts it back and raises :class:`InputError`.
    """
    if claim.identity is None:
        return
    with signals_blocked():
        backup = _put_aside(claim)
    _remove_path(backup)


# --------------------------------------------------------------------------------------------
# A folder written in place, file by file


class OwnedFolder:
    """A folder written in place over a long run (a training run's folder), file by file.

    Each file is written to a temporary and put in place only where the name is free, or holds
    a file this folder wrote: this session (same inode, size and time stamp as written), or,
    for a run being continued, a file its manifest lists, still as it was when the folder was
    opened. The manifest lists exactly those files, never a listing of the folder: a user's
    file there is neither replaced nor claimed.

    Parameters
    ----------
    path : path
        The folder.
    command : str
        Written to the manifest.
    claim : Claim, optional
        A new output's start check (:meth:`new`); ``None`` continues an existing one (:meth:`existing`).
    listed : iterable of str
        Files an earlier manifest of this folder lists (continued runs).
    """

    def __init__(self, path: Path, command: str, *, claim: Claim | None = None, listed: Iterable[str] = (),
                 option: str = "--out") -> None:
        self.path = Path(path)
        self.command = command
        self.option = option
        self._claim = claim
        self._listed = set(listed)
        # What each listed file is now: a later write replaces it only if it is still that file
        # (two runs continuing one folder at once: the second to write stops with exit 2).
        self._found = {name: _identity(self.path / name) for name in self._listed}
        self._written: dict[str, tuple | None] = {}
        self._created: list[Path] = []
        self._backup: Path | None = None

    @classmethod
    def new(cls, out: Path, command: str, *, force: bool, inputs: Iterable[tuple[str, Path | None]] = (),
            option: str = "--out") -> OwnedFolder:
        """A new output at ``out``, checked now: absent, empty, or (``force``) an earlier output of ours."""
        refuse_inside_inputs(out, inputs, option=option)
        return cls(out, command, claim=check_folder_replaceable(out, force=force, option=option), option=option)

    @classmethod
    def existing(cls, out: Path, command: str, *, option: str = "--out") -> OwnedFolder:
        """An earlier output of ``command`` continued in place; its manifest says which files are ours."""
        manifest = read_manifest(out)
        if manifest is None or manifest.get("command") != command:
            raise InputError(
                f"{out}: not an irstd-bench {command} folder (no {MANIFEST_NAME} of {command}); "
                f"write into a new folder with {option} NEW"
            )
        return cls(out, command, listed=[*manifest["files"], MANIFEST_NAME], option=option)

    @property
    def replaces_earlier(self) -> bool:
        """Opening removes an earlier output (a new folder claimed over a non-empty one)."""
        return self._claim is not None and self._claim.identity is not None and not _is_empty_folder(self.path)

    def open(self) -> None:
        """Create the folder (an empty one is used as it is). An earlier output it replaces is put
        aside (checked again) and removed at the first :meth:`write`; :meth:`discard` before
        that puts it back."""
        sweep_stale_temps(self.path.absolute().parent)
        claim = self._claim
        if claim is None:  # an earlier output continued in place
            return
        if claim.identity is not None:
            if _is_empty_folder(self.path) and _identity(self.path) == claim.identity:
                return
            with signals_blocked():
                self._backup = _put_aside(claim)
        created = [self.path.absolute(), *missing_ancestors(self.path)]
        try:
            self.path.mkdir(parents=True)
        except OSError as exc:
            kept = _restore(self._backup, self.path) if self._backup is not None else ""
            self._backup = None
            where = f"{self.option} {self.path}"
            if isinstance(exc, FileExistsError):
                raise InputError(f"{where}: appeared while this command ran (another run?){kept}") from None
            raise InputError(f"{where}: cannot create the folder ({exc.strerror or exc}){kept}") from None
        self._created = created

    def write(self, name: str, fill: Callable[[Path], None]) -> None:
        """Write file ``name``: ``fill(tmp)`` writes a temporary, which then replaces only our own file."""
        target = self.path / name
        tmp = temp_path(target)
        try:
            fill(tmp)
            self._place(name, tmp)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._drop_backup()

    def write_text(self, name: str, text: str) -> None:
        """Write text file ``name`` (UTF-8, ``\\n`` line ends) as :meth:`write` does."""
        self.write(name, lambda tmp: tmp.write_text(text, encoding="utf-8", newline="\n"))

    def write_manifest(self, extra: Mapping | None = None) -> None:
        """Write the manifest: the files listed before and those written since, nothing else."""
        self.write_text(MANIFEST_NAME, manifest_text(self.command, self._listed | set(self._written), extra=extra))

    @property
    def written(self) -> bool:
        """Something was written in this session."""
        return bool(self._written)

    def discard(self) -> None:
        """Remove what this session wrote and the folders it created; put back what :meth:`open` moved aside."""
        for name, ours in self._written.items():
            _take_back(self.path / name, ours)
        self._written.clear()
        remove_empty(self._created)
        if self._backup is not None and not os.path.lexists(self.path):
            _restore(self._backup, self.path)
            self._backup = None

    def _place(self, name: str, tmp: Path) -> None:
        target = self.path / name
        ours = _identity(tmp)
        if name in self._written:
            claim = Claim(target, False, True, self.option, self._written[name])
        elif self._found.get(name) is not None:
            claim = Claim(target, False, True, self.option, self._found[name])
            if claim.identity[0] != stat.S_IFREG:
                raise InputError(f"{target}: listed in {MANIFEST_NAME} but no longer a file; nothing was written")
        else:
            claim = Claim.absent(target, option=self.option)
        with signals_blocked():
            backup = _put_in_place(tmp, claim)
        if backup is not None:
            backup.unlink(missing_ok=True)
        self._written[name] = ours

    def _drop_backup(self) -> None:
        """Remove the earlier output :meth:`open` put aside, checked once more (it waited a while)."""
        if self._backup is None:
            return
        backup, self._backup = self._backup, None
        problem = _folder_problem(backup, force=True, option=self.option, shown=self.path)
        if problem is not None:
            raise InputError(f"{problem}; the earlier output is kept as {backup}")
        shutil.rmtree(backup, ignore_errors=True)
