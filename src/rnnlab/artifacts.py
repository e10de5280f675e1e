"""The one artifact protocol: how rnnlab commits, checks, reads and cleans its folders.

Every folder rnnlab writes -- a training run and its ``best/``, an n-gram model, a
forecaster, a classifier, a tagger, a prepared corpus -- is an *artifact*: a JSON
manifest (``config.json``, ``manifest.json``) plus the files it names. Four rules,
written once here:

**Commit** (:func:`commit_files`, :func:`staged_folder`). A folder is replaced as a
whole. The complete new set of files is written into a hidden staging folder
(``.rnnlab-tmp-...``) and flushed to disk (file contents, then the folder entries).

* A folder that does not exist yet is staged beside it and renamed into place: it
  never exists half-written.
* An existing folder is staged inside it; renaming the staging folder to
  ``DIR/.rnnlab-commit`` is the commit point. The files are then moved into ``DIR``
  one by one, the manifest last, and the empty commit folder is removed. A reader
  takes each file from ``DIR/.rnnlab-commit`` when it is there and from ``DIR``
  otherwise (:func:`artifact_file`), so it sees the old complete folder (before the
  commit point) or the new complete one (after it), whatever moment a crash hit.
  Files of the folder that the new version does not write (a run's ``metrics.jsonl``,
  ``best/``) are left alone, except the ``stale`` names a caller gives (an old
  version's files the new manifest no longer names).

**Cleanup** (:func:`recover`). The next commit, output-folder check or prepare of a
folder finishes a commit cut short after its commit point and deletes what rnnlab's
own interrupted writes left behind: inside the folder, names that start with
``.rnnlab-`` (:func:`is_temporary`); beside it, only staging folders named for this
folder (``.rnnlab-tmp-<folder name>-<pid>-<8 hex digits>``) whose process is no longer
running. Nothing else is ever removed.

**Output folders** (:func:`prepare_output_folder`). The one check a command runs on
its ``--out`` folder before any work starts; what ``--overwrite`` may remove is the
owned files of the folder's kind (:data:`KINDS`), nothing else.

**Verified reads** (:func:`member_path`, :func:`verify_member`). A name read from a
manifest is data, never trusted: it must be a relative name whose path, symlinks
followed, lies inside the folder (no absolute path, no ``..``, no symlink leading out)
and is a regular file; its size and SHA-256 are compared with the manifest before
the file is used.

Artifact kinds are declared values (:class:`ArtifactKind` in the read-only table
:data:`KINDS`), never registered at import time.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import MappingProxyType
from typing import Callable, Iterable, Iterator, Mapping

from rnnlab.errors import CheckpointError, RnnlabError, UsageError
from rnnlab.fileio import (TEMP_PREFIX, file_digest, fsync_dir, probe_writable, special_file_kind, temporary_name,
                           utf8_path_problem, write_synced)

CONFIG = "config.json"
CORPUS_MANIFEST = "manifest.json"
CHECKPOINT_FORMAT = "rnnlab.checkpoint/1"
CORPUS_FORMAT = "rnnlab.corpus/1"
COMMIT = f"{TEMP_PREFIX}commit"


# ----------------------------------------------------------------------------------
# kinds


@dataclass(frozen=True)
class ArtifactKind:
    """What one kind of rnnlab folder is.

    ``name``: the manifest's ``kind`` value; ``title``: how messages call it;
    ``manifest``: the JSON file describing the folder (moved last by a commit, so a
    folder that has it is complete); ``format``: the manifest's ``format`` value;
    ``required``: the files every complete folder of the kind holds; ``owned``: every
    file name rnnlab writes there (what ``--overwrite`` may remove); ``owned_pattern``:
    a regular expression for owned names that vary (a prepared corpus's shards);
    ``owned_folders``: subfolders of the same kind (a run's ``best/``).
    """

    name: str
    title: str
    manifest: str
    format: str
    required: tuple[str, ...]
    owned: tuple[str, ...]
    owned_folders: tuple[str, ...] = ()
    owned_pattern: str | None = None

    def owns(self, name: str) -> bool:
        """True for a file name that rnnlab writes into a folder of this kind."""
        return name in self.owned or bool(self.owned_pattern and re.fullmatch(self.owned_pattern, name))


# A subword tokenizer's own JSON (rnnlab.data.subword), beside the weights of the models that read it.
TOKENIZER = "tokenizer.json"
_TRAINING_FILES = (CONFIG, "model.safetensors", "optimizer.safetensors", "state.safetensors", "metrics.jsonl")
_TRAINING_REQUIRED = (CONFIG, "model.safetensors", "optimizer.safetensors", "state.safetensors")

KINDS: Mapping[str, ArtifactKind] = MappingProxyType({kind.name: kind for kind in (
    ArtifactKind("language-model", "language-model run", CONFIG, CHECKPOINT_FORMAT, _TRAINING_REQUIRED,
                 _TRAINING_FILES + ("perplexity.png", TOKENIZER), owned_folders=("best",)),
    ArtifactKind("ngram", "n-gram model", CONFIG, CHECKPOINT_FORMAT, (CONFIG, "model.safetensors"),
                 (CONFIG, "model.safetensors", TOKENIZER)),
    ArtifactKind("forecaster", "forecaster", CONFIG, CHECKPOINT_FORMAT, (CONFIG, "model.safetensors"),
                 (CONFIG, "model.safetensors")),
    # last.safetensors: the latest weights as some task folders hold them beside model.safetensors
    ArtifactKind("classifier", "sequence classifier", CONFIG, CHECKPOINT_FORMAT, _TRAINING_REQUIRED,
                 _TRAINING_FILES + ("last.safetensors",), owned_folders=("best",)),
    ArtifactKind("tagger", "sequence tagger", CONFIG, CHECKPOINT_FORMAT, _TRAINING_REQUIRED,
                 _TRAINING_FILES + ("last.safetensors",), owned_folders=("best",)),
    # rnnlab reproduce: the report, its data and its figures (names in rnnlab.reproduce.FIGURES)
    ArtifactKind("reproduction", "chapter reproduction", CONFIG, CHECKPOINT_FORMAT,
                 (CONFIG, "report.md", "results.json"),
                 (CONFIG, "report.md", "results.json", "sine.png", "zipf.png", "perplexity.png", "clipping.png",
                  "bptt.png")),
    ArtifactKind("prepared-corpus", "prepared corpus", CORPUS_MANIFEST, CORPUS_FORMAT, (CORPUS_MANIFEST,),
                 (CORPUS_MANIFEST, TOKENIZER), owned_pattern=r"(train|val|test)-\d{5}\.bin"),
)})

# The manifests of every kind: a commit moves them last.
MANIFESTS = frozenset(kind.manifest for kind in KINDS.values())


def artifact_kind(name: str) -> ArtifactKind:
    """The declared kind ``name``; a ``ValueError`` for a name no kind has (a bug in the caller)."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown artifact kind {name!r}; known: {', '.join(KINDS)}") from None


# ----------------------------------------------------------------------------------
# temporary names and cleanup

# Per-file temporaries (".config.json.tmp-1234") that a writer renaming each file into
# place leaves when killed: rnnlab's names too, removed like the others.
_FILE_TEMPORARY = re.compile(r"^\.(config\.json|[\w\-]+\.safetensors)\.tmp-\d+$")


def is_temporary(name: str) -> bool:
    """True for the names of rnnlab's own temporary files and folders inside an artifact folder."""
    return name.startswith(TEMP_PREFIX) or bool(_FILE_TEMPORARY.match(name))


def _staging_pattern(folder_name: str) -> re.Pattern:
    """The names :func:`rnnlab.fileio.temporary_name` gives a staging folder for ``folder_name``."""
    return re.compile(rf"{re.escape(TEMP_PREFIX)}tmp-{re.escape(folder_name)}-(\d+)-[0-9a-f]{{8}}")


def _process_running(pid: int) -> bool:
    """True when a process ``pid`` runs on this machine (or that cannot be told)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def stale_siblings(folder: str | os.PathLike) -> list[Path]:
    """Staging folders beside ``folder`` named for it whose writing process has ended."""
    folder = Path(folder)
    parent = folder.parent
    pattern = _staging_pattern(folder.name)
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    found = []
    for name in sorted(names):
        match = pattern.fullmatch(name)
        if match and not _process_running(int(match.group(1))):
            found.append(parent / name)
    return found


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def recover(folder: str | os.PathLike) -> None:
    """Finish a commit cut short after its commit point, then delete rnnlab's abandoned
    temporaries in and beside ``folder`` (see the module docstring); safe when no other
    process writes into ``folder``."""
    folder = Path(folder)
    for sibling in stale_siblings(folder):
        _remove(sibling)
    if not folder.is_dir():
        return
    if (folder / COMMIT).is_dir():
        _finish_commit(folder)
    for entry in folder.iterdir():
        if is_temporary(entry.name):
            _remove(entry)


# ----------------------------------------------------------------------------------
# the commit


def artifact_file(folder: str | os.PathLike, name: str) -> Path:
    """Where the current version of file ``name`` of ``folder`` is: in the commit
    folder while a commit is being finished, in ``folder`` otherwise."""
    folder = Path(folder)
    committed = folder / COMMIT / name
    return committed if committed.is_file() else folder / name


def _finish_commit(folder: Path, stale: tuple[str, ...] = ()) -> None:
    """Move the files of a committed version into place, drop the commit folder, then
    the ``stale`` files of the old version."""
    commit = folder / COMMIT
    # The manifest last: until then a reader finds it, and every file it names, in the commit folder.
    for name in sorted(os.listdir(commit), key=lambda n: n in MANIFESTS):
        os.replace(commit / name, folder / name)
    fsync_dir(folder)
    commit.rmdir()
    for name in stale:
        (folder / name).unlink(missing_ok=True)
    fsync_dir(folder)


def _staging_for(folder: Path) -> Path:
    """A fresh staging folder for ``folder``: inside it when it exists, beside it otherwise."""
    if folder.is_dir():
        recover(folder)
        staging = folder / temporary_name("commit")
    else:
        folder.parent.mkdir(parents=True, exist_ok=True)
        recover(folder)
        staging = folder.parent / temporary_name(folder.name)
    staging.mkdir()
    return staging


def _commit(staging: Path, folder: Path, stale: tuple[str, ...]) -> None:
    """Make the complete, flushed ``staging`` folder the current version of ``folder``."""
    fsync_dir(staging)
    if staging.parent != folder:
        os.rename(staging, folder)  # the folder appears complete or not at all
        fsync_dir(folder.parent)
        return
    os.rename(staging, folder / COMMIT)  # the commit point
    fsync_dir(folder)
    _finish_commit(folder, stale)


@contextmanager
def staged_folder(folder: str | os.PathLike,
                  stale: Callable[[Path], Iterable[str]] | None = None) -> Iterator[Path]:
    """A staging folder to write the complete new version of ``folder`` into; committed
    when the block ends without error, deleted when it raises (Ctrl-C included).

    Write every file with :func:`rnnlab.fileio.write_synced` (or flush and fsync it):
    the commit flushes the folder entries, not the contents. ``stale(staging)``: the
    names of the old version that the complete new one (in ``staging``) does not
    replace and that must go, removed right after the commit.
    """
    folder = Path(folder)
    staging = _staging_for(folder)
    try:
        yield staging
        _commit(staging, folder, tuple(stale(staging)) if stale is not None else ())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def commit_files(folder: str | os.PathLike, contents: Mapping[str, bytes]) -> Path:
    """Replace the files ``contents`` names (name -> bytes) in ``folder`` as one unit;
    ``folder`` is created if needed. Returns ``folder`` as a Path."""
    folder = Path(folder)
    with staged_folder(folder) as staging:
        for name, data in contents.items():
            write_synced(staging / name, data)
    return folder


# ----------------------------------------------------------------------------------
# verified reads

_SHA256 = re.compile(r"[0-9a-f]{64}")


def name_problem(name) -> str | None:
    """Why ``name`` cannot name a file inside an artifact folder (None: it can): not a
    non-empty string, absolute, a drive or UNC path, a ``..`` or empty component, a NUL byte."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty file name"
    if "\0" in name:
        return "holds a NUL byte"
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive or PureWindowsPath(name).is_absolute():
        return "is an absolute path; a manifest names files inside its folder"
    parts = re.split(r"[\\/]", name)
    if any(part in ("", ".", "..") for part in parts):
        return "must be a relative path inside the folder (no '..', '.' or empty parts)"
    return None


def member_path(folder: str | os.PathLike, name, where: str, error: type[RnnlabError] = CheckpointError,
                advice: str = "") -> Path:
    """The path of the file ``name`` that ``where`` (the manifest and its key, as
    messages show them) names inside ``folder``, after checking it: a relative name
    (:func:`name_problem`) whose path, symlinks followed, lies inside ``folder`` and is
    a regular file. Raises ``error`` naming ``where`` otherwise, ending with ``advice``
    (what to do about it)."""
    tail = f"; {advice}" if advice else ""
    problem = name_problem(name)
    if problem:
        raise error(f"{where} {problem}, got {json.dumps(name, ensure_ascii=False)[:80]}{tail}")
    path = artifact_file(folder, name)
    root = os.path.realpath(folder)
    real = os.path.realpath(path)
    try:
        inside = os.path.commonpath([root, real]) == root and real != root
    except ValueError:  # another drive (Windows)
        inside = False
    if not inside:
        raise error(f"{where} names {name!r}, a symbolic link leading outside {folder}; rnnlab reads only the "
                    f"files inside an artifact folder{tail}")
    kind = special_file_kind(path)
    if kind is not None:
        raise error(f"{path} (named by {where}) is {kind}, not a regular file{tail}")
    if not os.path.isfile(path):
        raise error(f"{path} (named by {where}) is {'missing' if not os.path.lexists(path) else 'not a file'}{tail}")
    return path


# Digests of files this process has verified, keyed by the file's identity:
# (real path, device, inode, size, modification time in ns).
_VERIFIED: dict[tuple, str] = {}


def _identity(path: Path) -> tuple:
    stat = os.stat(path)
    return (os.path.realpath(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def verify_member(folder: str | os.PathLike, name, where: str, manifest: str, size: int | None = None,
                  sha256: str | None = None, error: type[RnnlabError] = CheckpointError,
                  once_per_process: bool = False, advice: str = "") -> Path:
    """:func:`member_path`, then the file's size (when ``size`` is given) and SHA-256
    (when ``sha256`` is given) compared with what ``manifest`` (its path, for
    messages) records; returns the path.

    ``once_per_process``: a file this process has verified already and that is
    unchanged since (same inode, size and modification time) is not hashed again.
    """
    path = member_path(folder, name, where, error, advice)
    tail = f"; {advice}" if advice else ""
    if size is not None:
        actual = os.stat(path).st_size
        if actual != size:
            raise error(f"{path} has {actual} bytes, the manifest says {size} ({manifest}){tail}")
    if sha256 is not None:
        key = _identity(path) if once_per_process else None
        if key is None or _VERIFIED.get(key) != sha256:
            if file_digest(path) != sha256:
                raise error(f"{path} does not match the checksum in {manifest} (its SHA-256 differs){tail}")
            if key is not None:
                _VERIFIED[key] = sha256
    return path


def is_sha256(value) -> bool:
    """True for a SHA-256 as manifests record it: 64 lowercase hex digits."""
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


# ----------------------------------------------------------------------------------
# checkpoint manifests (config.json)


def load_config(folder: str | os.PathLike, kind: str | None = None) -> dict:
    """Read and check a checkpoint's ``config.json``; raise :class:`CheckpointError` if
    it is not ours (:class:`UsageError` when ``folder`` is not a path at all). Every name in
    its ``files`` record must name a file inside the folder."""
    if not isinstance(folder, (str, os.PathLike)):
        raise UsageError(f"the checkpoint folder must be a path (a str or os.PathLike), got {type(folder).__name__}")
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder; expected an rnnlab checkpoint folder")
    path = artifact_file(folder, CONFIG)
    if not path.is_file():
        raise CheckpointError(f"{folder} is not an rnnlab checkpoint (no {CONFIG})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is unreadable: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{folder} is not an rnnlab checkpoint (config format is not {CHECKPOINT_FORMAT})")
    files = config.get("files", {})
    if not isinstance(files, dict):
        raise CheckpointError(f"{folder / CONFIG}: key 'files' must be a JSON object of file names and SHA-256s")
    for name, digest in files.items():
        problem = name_problem(name)
        if problem:
            raise CheckpointError(f"{folder / CONFIG}: key 'files' names {name!r}, which {problem}")
        if not is_sha256(digest):
            raise CheckpointError(f"{folder / CONFIG}: key 'files.{name}' must be a SHA-256 (64 hex digits), "
                                  f"got {json.dumps(digest)[:80]}")
    if kind is not None and config.get("kind") != kind:
        raise CheckpointError(f"{folder} holds a '{config.get('kind')}' model, not a '{kind}' model")
    return config


# ----------------------------------------------------------------------------------
# output folders


def _describe(config: dict) -> str:
    kind = KINDS.get(config.get("kind"))
    return f"an rnnlab {kind.title if kind else repr(config.get('kind')) + ' checkpoint'}"


# The output folders this process created (prepare_output_folder), shallowest first: a command
# refused before it wrote anything removes them again (remove_unused_folders), so a bad
# option or a missing input leaves no empty folder behind.
_CREATED: list[Path] = []


def remove_unused_folders() -> None:
    """Remove the output folders this process created that are still empty (deepest first);
    one that holds anything (work was written) is kept."""
    while _CREATED:
        try:
            _CREATED.pop().rmdir()
        except OSError:  # not empty, or gone: kept as it is
            pass


def forget_created_folders() -> None:
    """Start a new command: the folders created so far are its predecessors' to keep."""
    _CREATED.clear()


def prepare_output_folder(folder: str | os.PathLike, kind: str, overwrite: bool = False, resume: bool = False,
                          option: str = "--out") -> Path:
    """Check and create an output folder before any work starts; return it as a Path.

    The rules, shared by every command that writes a folder:

    * a path that is a file, or where no folder can be created or written, is refused;
    * a path inside another rnnlab output folder (a run's ``best/``, an n-gram model) is
      refused: a save there would mix a foreign folder into that checkpoint;
    * a name that is not UTF-8 is refused (it is recorded and printed);
    * an empty or missing folder is used (created here);
    * a non-empty folder that is not an rnnlab output of ``kind`` is refused, naming one
      of its files: rnnlab never writes into a folder of someone else's files;
    * an rnnlab output of ``kind`` is refused unless ``resume`` (the run continues in
      place) or ``overwrite``, which removes rnnlab's own files there (the kind's
      owned files, :data:`KINDS`) and nothing else.

    Also finishes or cleans up an interrupted save (:func:`recover`).
    """
    artifact_kind(kind)
    problem = utf8_path_problem(folder)
    if problem:
        raise UsageError(f"{option} {problem}")
    path = Path(os.path.expanduser(os.fspath(folder)))
    what = f"{option} {path}"
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} is a file, not a folder; give a folder path")
    _refuse_nested(path, what)
    if path.is_dir():
        try:
            entries = sorted(entry.name for entry in path.iterdir())
        except OSError as exc:
            raise UsageError(f"{what}: cannot read the folder ({exc.strerror or exc})") from None
        if any(not is_temporary(name) for name in entries) or COMMIT in entries:
            _check_existing(path, kind, entries, overwrite, resume, what)
    missing = []
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        missing.append(ancestor)
        ancestor = ancestor.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{what}: cannot create the folder ({exc.strerror or exc})") from None
    _CREATED.extend(reversed(missing))
    probe_writable(path, what)
    recover(path)
    return path


def _refuse_nested(path: Path, what: str) -> None:
    """Refuse an output folder inside another rnnlab output folder (symlinks followed)."""
    real = Path(os.path.realpath(path))
    for parent in real.parents:
        if not (parent / CONFIG).is_file():
            continue
        try:
            config = load_config(parent)
        except CheckpointError:  # a user's own config.json: not ours
            continue
        raise UsageError(f"{what} lies inside {parent}, which holds {_describe(config)}; rnnlab never writes "
                         "into another output folder: choose a folder outside it")


def _check_existing(path: Path, kind: str, entries: list[str], overwrite: bool, resume: bool, what: str) -> None:
    try:
        config = load_config(path)
    except CheckpointError:
        config = None
    if config is None:
        visible = [name for name in entries if not is_temporary(name)] or [COMMIT]
        raise UsageError(f"{what} is not empty and is not an rnnlab output folder (it holds {visible[0]!r}"
                         f"{f' and {len(visible) - 1} more' if len(visible) > 1 else ''}); rnnlab never writes "
                         "into a folder of other files: choose a new or empty folder")
    if config.get("kind") != kind:
        raise UsageError(f"{what} holds {_describe(config)}, not {_describe({'kind': kind})}; choose another folder")
    if resume:
        return
    if not overwrite:
        again = f"continue it with rnnlab train --resume {path}, pass " if kind == "language-model" else "pass "
        raise UsageError(f"{what} already holds {_describe(config)}; {again}--overwrite to replace it, "
                         "or choose another folder")
    remove_owned(path, kind)


def remove_owned(folder: str | os.PathLike, kind: str) -> None:
    """Delete rnnlab's own files of ``kind`` from ``folder`` (the manifest last), and
    nothing else; an owned subfolder goes only when nothing else is left in it."""
    folder = Path(folder)
    spec = artifact_kind(kind)
    try:
        for sub in spec.owned_folders:
            if (folder / sub).is_dir() and not (folder / sub).is_symlink():
                remove_owned(folder / sub, kind)
                try:
                    (folder / sub).rmdir()
                except OSError:  # the user's files are still in it
                    pass
        for name in [n for n in os.listdir(folder) if is_temporary(n)]:
            target = folder / name
            shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
        # The manifest last: a removal cut short still leaves a folder recognisable as ours.
        owned = sorted((n for n in os.listdir(folder) if spec.owns(n)), key=lambda n: n == spec.manifest)
        for name in owned:
            if (folder / name).is_file() or (folder / name).is_symlink():
                (folder / name).unlink()
    except OSError as exc:
        raise UsageError(f"--overwrite: cannot remove the old files of {folder} ({exc.strerror or exc})") from None


def refuse_foreign_files(folder: Path, kind: str, option: str = "--out") -> None:
    """Refuse a folder holding a file that an artifact of ``kind`` does not own (used
    where the whole folder is rewritten, a prepared corpus)."""
    spec = artifact_kind(kind)
    foreign = sorted(e.name for e in folder.iterdir() if not is_temporary(e.name) and not spec.owns(e.name))
    if foreign:
        raise UsageError(f"{option} {folder} holds {foreign[0]!r}, which rnnlab did not write; move it away or "
                         "choose another folder")

