"""Small file helpers shared by corpora, checkpoints and every command that writes a file.

* :func:`atomic_write` replaces a file so that a crash leaves the old or the new content;
* :func:`prepare_output_file` checks an output file (``--plot``, ``--arpa``, an export)
  before any work starts: never a folder, never an existing file unless ``overwrite``,
  and its folder creatable and writable (proved by writing a probe file);
* :func:`fsync_dir` makes renames inside a folder durable;
* :func:`special_file_kind` and :func:`read_regular_file` keep every reader away from
  FIFOs, sockets and devices (a FIFO would block a read forever, a device never ends).
"""
from __future__ import annotations

import hashlib
import os
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path

from rnnlab.errors import DataError, UsageError

# Every temporary name rnnlab creates starts with this, so a later run (or the output
# folder check) can tell its own leftovers from a user's files.
TEMP_PREFIX = ".rnnlab-"


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks (constant memory for any size)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_SPECIAL_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                  (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _kind_of_mode(mode: int) -> str | None:
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, kind in _SPECIAL_KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def special_file_kind(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it exists (symlinks followed) and is neither a regular file nor
    a folder: ``"a FIFO (named pipe)"``, ``"a socket"``, ``"a character device"``...;
    ``None`` for a regular file, a folder, or a path that cannot be examined."""
    try:
        return _kind_of_mode(os.stat(path).st_mode)
    except (OSError, ValueError):  # missing, a symlink loop, a NUL byte in the name
        return None


def refuse_special_file(path: str | os.PathLike, label: str | None = None) -> None:
    """Raise :class:`DataError` when ``path`` is a FIFO, socket or device, before anything opens it."""
    kind = special_file_kind(path)
    if kind is not None:
        raise DataError(f"{label or path} is {kind}, not a regular file; rnnlab reads only regular files "
                        "(a pipe or device could block or never end)")


def check_input_file(path: str | os.PathLike, label: str) -> Path:
    """``path`` as a Path when it is a regular file (symlinks followed); otherwise one
    :class:`DataError` saying what it is instead: missing, a folder, a FIFO, a device..."""
    path = Path(path)
    refuse_special_file(path, label)
    if path.is_dir():
        raise DataError(f"{label} is a folder, not a file")
    if not path.is_file():
        raise DataError(f"{label}: no such file")
    return path


def read_regular_file(path: str | os.PathLike, label: str | None = None) -> bytes:
    """The bytes of ``path``, which must be a regular file (symlinks followed).

    FIFOs, sockets and devices raise :class:`DataError` before any read: the file is
    examined, then opened without blocking and examined again through the open handle,
    so a file swapped for a FIFO in between is refused too, never waited on."""
    refuse_special_file(path, label)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "Is a directory", str(path))
        kind = _kind_of_mode(mode)
        if kind is not None:
            raise DataError(f"{label or path} is {kind}, not a regular file; rnnlab reads only regular files")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            return handle.read()
    finally:
        if fd >= 0:
            os.close(fd)


def temporary_name(label: str = "") -> str:
    """A fresh name for a temporary file or folder (unique per process and call)."""
    return f"{TEMP_PREFIX}tmp-{label}{'-' if label else ''}{os.getpid()}-{secrets.token_hex(4)}"


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (renames, new files) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows: folders cannot be opened; renames there are durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_synced(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` and flush it to disk before returning."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, rename it into place."""
    path = Path(path)
    tmp = path.with_name(temporary_name(path.name))
    try:
        write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent if str(path.parent) else ".")


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **options):
    """``open`` for writing a file that appears complete or not at all: the handle writes
    a temporary file beside ``path``, renamed into place when the block ends without error."""
    path = Path(path)
    tmp = path.with_name(temporary_name(path.name))
    try:
        with open(tmp, mode, **options) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def utf8_path_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be written into a ``config.json`` or printed: a name with bytes
    that are not UTF-8 (held by Python as lone surrogates); ``None`` when it can."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return (f"{ascii(os.fspath(path))} is not a UTF-8 name (it holds bytes that are not text); rnnlab records "
                "and prints its paths, so rename it or choose a UTF-8 name")
    except TypeError:  # bytes paths: never given by the CLI
        return None
    return None


def probe_writable(folder: Path, what: str) -> None:
    """Prove that files can be created in ``folder`` by creating and deleting one."""
    probe = folder / temporary_name("probe")
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{what}: cannot write into {folder} ({exc.strerror or exc})") from None


def prepare_output_file(path: str | os.PathLike, option: str, overwrite: bool = False) -> Path:
    """Check an output file before the work that produces it starts; return it as a Path.

    Refuses a folder, an existing file (unless ``overwrite``), and a place where no file
    can be created; creates the missing parent folders. ``option`` names the argument in
    messages (``--plot``, ``FILE``).
    """
    problem = utf8_path_problem(path)
    if problem:
        raise UsageError(f"{option} {problem}")
    path = Path(os.path.expanduser(os.fspath(path)))
    what = f"{option} {path}"
    if not path.name or path.is_dir():
        raise UsageError(f"{what} is a folder; give a file name")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise UsageError(f"{what} already exists; pass --overwrite to replace it, or choose another name")
        if not os.access(path, os.W_OK):
            raise UsageError(f"{what} exists and is not writable")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission, read-only file system
        raise UsageError(f"{what}: cannot create the folder {parent} ({exc.strerror or exc})") from None
    probe_writable(parent, what)
    return path
