"""Small file helpers shared by corpora, checkpoints and every command that writes a file.

* :func:`atomic_write` replaces a file so that a crash leaves the old or the new content;
* :func:`prepare_output_file` checks an output file (``--plot``, ``--arpa``, an export)
  before any work starts: never a folder, never an existing file unless ``overwrite``,
  and its folder creatable and writable (proved by writing a probe file);
* :func:`fsync_dir` makes renames inside a folder durable.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

from rnnlab.errors import UsageError

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
