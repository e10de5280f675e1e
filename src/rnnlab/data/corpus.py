"""Resolve a corpus name or path to text.

Sources, in the order :func:`load_corpus` tries them:

* ``pydoc`` (the default): the Python reference documentation that ships with every
  CPython in ``pydoc_data.topics`` (~465 KB of English). Needs no download.
* ``timemachine``: H. G. Wells' *The Time Machine* as used by d2l. Looked up in
  ``data_dir`` / ``$RNNLAB_DATA``, then the user cache, then downloaded; the SHA-1 is
  always verified.
* a UTF-8 file, a folder of text files (``*.txt``, ``*.md``, ``*.rst``, recursively),
  or a glob pattern.

Held-out text can come from files of its own (corpora such as PTB and WikiText ship
that way): ``val``/``test`` paths given to :func:`load_corpus`, or a *split folder*
whose top-level files are named ``train``/``valid`` (or ``val``)/``test`` as one of
their dot-separated parts (``train.txt``, ``ptb.valid.txt``, ``wiki.test.tokens``).
They ride along as :attr:`Corpus.val` and :attr:`Corpus.test`; the main text is then
the whole training split.

A *prepared corpus* (a folder holding ``manifest.json``, written by ``rnnlab corpus
prepare``, :mod:`rnnlab.data.prepare`) loads as a :class:`Corpus` without text whose
checksum is its manifest's SHA-1; :func:`rnnlab.data.dataset.prepare_text` then opens its
memory-mapped token shards instead of encoding text.
"""
from __future__ import annotations

import glob as globlib
import hashlib
import json
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rnnlab.artifacts import CORPUS_FORMAT, CORPUS_MANIFEST, artifact_file
from rnnlab.errors import CorpusNotFoundError, DataError, UsageError
from rnnlab.fileio import file_digest, read_regular_file, refuse_special_file, utf8_path_problem
from rnnlab.progress import logger

DEFAULT_CORPUS = "pydoc"
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")
ENCODING_ERRORS = ("strict", "replace", "ignore")
MANIFEST = CORPUS_MANIFEST  # what makes a folder a prepared corpus (rnnlab.data.prepare)
PREPARED_FORMAT = CORPUS_FORMAT


@dataclass(frozen=True)
class RemoteText:
    filename: str
    url: str
    sha1: str
    size: int


REMOTE = {
    "timemachine": RemoteText(
        filename="timemachine.txt",
        url="http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt",
        sha1="090b5e7e70c295757f55df93cb0a180b9691891a",
        size=178_979,
    ),
}
BUILTIN_NAMES = ("pydoc",)
CORPUS_NAMES = BUILTIN_NAMES + tuple(REMOTE)


@dataclass
class Corpus:
    """Raw text of a corpus and where it came from.

    ``text`` is exactly the decoded file content (or the concatenation of several
    files, each followed by a newline when it does not end with one). ``val`` and
    ``test``, when set, are the validation and test text read from files of their own
    (each a :class:`Corpus` of one file, with its SHA-1); ``text`` is then all training text.

    ``sha1`` identifies the content: of the file for one file, of the sorted relative
    file names and contents for a folder or glob (:func:`files_sha1`), of the text for
    the built-in corpus. ``location`` is the absolute path (or pattern) it was read
    from, ``None`` for a named corpus.
    """

    name: str
    text: str
    sources: list[str] = field(default_factory=list)
    sha1: str | None = None
    val: "Corpus | None" = None
    test: "Corpus | None" = None
    location: str | None = None

    def __len__(self) -> int:
        return len(self.text)


def sha1_of(path: Path) -> str:
    return file_digest(path, "sha1")


def files_sha1(files: list[Path], root: Path) -> str:
    """SHA-1 over the sorted names (relative to ``root``) and contents of several files.

    Relative names make a moved copy of a folder hash the same; a renamed, added,
    removed or edited file changes the hash.
    """
    digest = hashlib.sha1()
    for name, path in sorted((p.relative_to(root).as_posix() if p.is_relative_to(root) else p.as_posix(), p)
                             for p in files):
        digest.update(name.encode("utf-8") + b"\0" + sha1_of(path).encode("ascii") + b"\n")
    return digest.hexdigest()


def glob_root(pattern: str) -> Path:
    """The folder a glob pattern starts from: its path up to the first part with a wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if is_glob(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def cache_dir() -> Path:
    """User cache folder for downloaded corpora (``$XDG_CACHE_HOME/rnnlab``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnlab"


def _candidate_dirs(data_dir: str | os.PathLike | None) -> list[Path]:
    dirs = []
    if data_dir:
        if Path(data_dir).exists() and not Path(data_dir).is_dir():  # a typo'd file name, never a place to look
            raise UsageError(f"--data-dir {data_dir} is a file, not a folder; give the folder holding the corpora")
        dirs.append(Path(data_dir))
    if os.environ.get("RNNLAB_DATA"):
        dirs.append(Path(os.environ["RNNLAB_DATA"]))
    dirs.append(cache_dir())
    return dirs


def fetch_remote(name: str, data_dir: str | os.PathLike | None = None,
                 download: bool = True) -> Path:
    """Return a verified local path for the named remote corpus, downloading if needed."""
    spec = REMOTE[name]
    candidates = _candidate_dirs(data_dir)
    for folder in candidates:
        path = folder / spec.filename
        if path.is_file():
            actual = sha1_of(path)
            if actual != spec.sha1:
                raise DataError(
                    f"{path} has SHA-1 {actual}, expected {spec.sha1}; delete it or replace it "
                    f"with the original from {spec.url}")
            return path
    target = cache_dir() / spec.filename
    where = ", ".join(str(d) for d in candidates)
    if not download:
        raise CorpusNotFoundError(f"corpus '{name}' not found in {where}; put {spec.filename} there")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        logger.info("downloading %s from %s", spec.filename, spec.url)
        tmp = target.with_suffix(".part")
        with urllib.request.urlopen(spec.url, timeout=30) as response, open(tmp, "wb") as out:
            out.write(response.read())
        actual = sha1_of(tmp)
        if actual != spec.sha1:
            tmp.unlink(missing_ok=True)
            raise DataError(f"downloaded {spec.filename} has SHA-1 {actual}, expected {spec.sha1}")
        os.replace(tmp, target)
        return target
    except (OSError, ValueError) as exc:
        raise CorpusNotFoundError(
            f"corpus '{name}' is not available offline and the download failed ({exc.__class__.__name__}); "
            f"download {spec.url} (SHA-1 {spec.sha1}) and put {spec.filename} in one of: {where} "
            f"(or point --data-dir / RNNLAB_DATA at its folder)") from None


def builtin_text(name: str) -> str:
    if name == "pydoc":
        try:
            # lazy: pydoc_data.topics is ~0.5 MB of text, read only for the built-in corpus
            from pydoc_data.topics import topics
        except ImportError as exc:  # some distributions strip pydoc_data
            raise CorpusNotFoundError(
                "the built-in corpus needs the standard module pydoc_data, which this Python "
                "lacks; pass --corpus FILE instead") from exc
        # Sorted keys: the same text on every Python of the same version.
        return "\n\n".join(topics[key].strip("\n") for key in sorted(topics)) + "\n"
    raise UsageError(f"unknown built-in corpus '{name}'")


def read_text_file(path: Path, encoding_errors: str = "strict") -> str:
    """Read a UTF-8 file; undecodable bytes raise a :class:`DataError` saying where.

    Only a regular file is read: a FIFO, socket or device is a :class:`DataError` before
    any read (a FIFO would block forever); an unreadable file is one too."""
    if encoding_errors not in ENCODING_ERRORS:
        raise UsageError(f"unknown --encoding-errors '{encoding_errors}'; choose one of {', '.join(ENCODING_ERRORS)}")
    try:
        data = read_regular_file(path)
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a file") from None
    except FileNotFoundError:
        raise CorpusNotFoundError(f"{path}: no such file") from None
    except OSError as exc:  # no permission, a symlink loop, an I/O error
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8", errors=encoding_errors)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{path} is not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} "
            f"(line {line}); re-encode it as UTF-8 or pass --encoding-errors replace") from None


def _refuse_non_utf8(path, label: str) -> None:
    problem = utf8_path_problem(path)
    if problem:
        raise DataError(f"{label} {problem}")


def is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def resolve_files(spec: str) -> list[Path]:
    if is_glob(spec):
        files = sorted(Path(p) for p in globlib.glob(os.path.expanduser(spec), recursive=True))
        for p in files:  # a FIFO or device among the matches is refused, never skipped or read
            refuse_special_file(p, f"{p} (matched by '{spec}')")
        files = [p for p in files if p.is_file()]
        if not files:
            raise CorpusNotFoundError(f"no files match the pattern '{spec}'")
        return files
    path = Path(os.path.expanduser(spec))
    if path.is_symlink() and not path.exists():
        raise CorpusNotFoundError(f"corpus {spec} is a symbolic link to nothing (its target is missing, or it "
                                  "loops back to itself)")
    refuse_special_file(path, f"corpus {spec}")
    if path.is_dir():
        candidates = sorted(p for p in path.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        for p in candidates:  # a FIFO named like a text file would block the read forever
            refuse_special_file(p, f"{p} (in the corpus folder {path})")
        files = [p for p in candidates if p.is_file()]
        if not files:
            raise DataError(f"folder {path} has no text files ({', '.join('*' + s for s in TEXT_SUFFIXES)})")
        return files
    if path.is_file():
        return [path]
    raise CorpusNotFoundError(
        f"corpus '{spec}' is neither a file, a folder, a glob nor a known name "
        f"({', '.join(CORPUS_NAMES)})")


# Split-folder file roles: a name matches when one of its dot-separated parts (case
# ignored) is one of these words, so train.txt, ptb.train.txt and wiki.train.tokens all do.
SPLIT_ROLES = {"train": ("train",), "val": ("valid", "val"), "test": ("test",)}


def split_folder_files(folder: str | os.PathLike) -> dict[str, Path] | None:
    """``{"train": path, "val": path, "test": path}`` (val/test may be absent) when
    ``folder``'s top-level files name the splits, else ``None``.

    A folder is a split folder when it holds a train file and a valid or test file
    (hidden files are skipped; subfolders are not searched). Two files for one role, or
    one file naming two roles, raise :class:`DataError` naming them.
    """
    folder = Path(folder)
    found: dict[str, list[Path]] = {role: [] for role in SPLIT_ROLES}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        parts = {part.lower() for part in path.name.split(".")}
        roles = [role for role, words in SPLIT_ROLES.items() if parts & set(words)]
        if roles:  # a FIFO named valid.txt is refused, not skipped
            refuse_special_file(path, f"{path} (in the corpus folder {folder})")
        if not path.is_file():
            continue
        if len(roles) > 1:
            raise DataError(f"{path} names more than one split ({', '.join(roles)}); rename it or pass "
                            "--corpus TRAIN_FILE --val FILE --test FILE")
        if roles:
            found[roles[0]].append(path)
    if not found["train"] or not (found["val"] or found["test"]):
        return None
    for role, paths in found.items():
        if len(paths) > 1:
            raise DataError(f"folder {folder} has {len(paths)} {role} files ({', '.join(p.name for p in paths)}); "
                            f"keep one, or pass --corpus TRAIN_FILE --val FILE --test FILE")
    return {role: paths[0] for role, paths in found.items() if paths}


def read_held_out(path: str | os.PathLike, role: str, encoding_errors: str = "strict",
                  from_option: bool = True) -> Corpus:
    """One validation or test file (``role``: ``val`` or ``test``) as a :class:`Corpus`.

    ``from_option``: the path came from ``--val``/``--test``, so errors name the option.
    """
    label = f"--{role} {path}" if from_option else str(path)
    _refuse_non_utf8(path, f"--{role}" if from_option else "file")
    file = Path(os.path.expanduser(str(path)))
    refuse_special_file(file, label)
    if not file.is_file():
        what = "is a folder, not a file" if file.is_dir() else "no such file"
        raise CorpusNotFoundError(f"{label}: {what}")
    text = read_text_file(file, encoding_errors)
    if not text.strip():
        raise DataError(f"{label} is empty (no text to read)")
    return Corpus(name=file.stem, text=text, sources=[str(file)], sha1=sha1_of(file),
                  location=os.path.abspath(file))


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of a prepared corpus; :class:`DataError` when missing or not one."""
    folder = Path(os.path.expanduser(os.fspath(folder)))
    if not folder.is_dir():
        raise DataError(f"{folder} is {'not a folder' if folder.exists() else 'missing'}; expected a prepared "
                        "corpus folder (rnnlab corpus prepare)")
    path = artifact_file(folder, MANIFEST)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{folder} is not a prepared corpus (no {MANIFEST}); run rnnlab corpus prepare") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not a valid rnnlab corpus manifest ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != PREPARED_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise DataError(f"{path} is not an rnnlab prepared corpus (format {found!r}, expected {PREPARED_FORMAT!r})")
    return manifest


def manifest_sha1(folder: str | os.PathLike) -> str:
    """SHA-1 of ``manifest.json``: identifies the prepared data (it holds every shard's SHA-256)."""
    return file_digest(artifact_file(Path(os.path.expanduser(os.fspath(folder))), MANIFEST), "sha1")


class PreparedCorpus(Corpus):
    """What :func:`rnnlab.data.corpus.load_corpus` returns for a prepared folder: no
    text, the folder's location, and the SHA-1 of its manifest as the corpus checksum
    (so a checkpoint's data check tells when the folder was prepared again)."""


def prepared_corpus(folder: str | os.PathLike) -> PreparedCorpus:
    path = Path(os.path.expanduser(os.fspath(folder)))
    manifest = read_manifest(path)
    return PreparedCorpus(name=str(manifest.get("source", {}).get("name") or path.resolve().name), text="",
                          sources=[os.path.abspath(path / MANIFEST)], sha1=manifest_sha1(path),
                          location=os.path.abspath(path))


def load_corpus(name_or_path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
                encoding_errors: str = "strict", download: bool = True, val: str | os.PathLike | None = None,
                test: str | os.PathLike | None = None) -> Corpus:
    """Load a corpus by name (``pydoc``, ``timemachine``) or path (file, folder, glob).

    ``val`` / ``test``: files holding the validation / test text (see the module
    docstring); a split folder supplies them itself, so it refuses them.

    Raises :class:`CorpusNotFoundError` for missing sources and :class:`DataError` for
    empty or undecodable text.
    """
    corpus = _load_main(name_or_path, data_dir, encoding_errors, download, held_out_given=bool(val or test))
    if val:
        corpus.val = read_held_out(val, "val", encoding_errors)
    if test:
        corpus.test = read_held_out(test, "test", encoding_errors)
    return corpus


def _load_main(name_or_path, data_dir, encoding_errors: str, download: bool, held_out_given: bool) -> Corpus:
    spec = DEFAULT_CORPUS if name_or_path is None else str(name_or_path)
    if spec in BUILTIN_NAMES:
        text = builtin_text(spec)
        # Its text depends on the Python version: the hash tells a later eval when it changed.
        return Corpus(name=spec, text=text, sources=[f"builtin:{spec}"],
                      sha1=hashlib.sha1(text.encode("utf-8")).hexdigest())
    if not spec.strip():
        raise UsageError("--corpus is empty; give a name, a file, a folder or a glob")
    if spec in REMOTE:
        path = fetch_remote(spec, data_dir=data_dir, download=download)
        text = read_text_file(path, encoding_errors)
        return Corpus(name=spec, text=text, sources=[str(path)], sha1=REMOTE[spec].sha1)
    folder = Path(os.path.expanduser(spec))
    if not is_glob(spec) and (folder / MANIFEST).is_file():
        # A prepared corpus (rnnlab corpus prepare): prepare_text reads its memory-mapped shards.
        if held_out_given:
            raise UsageError(f"{spec} is a prepared corpus, which holds its own splits; drop --val/--test")
        return prepared_corpus(folder)
    split_files = split_folder_files(folder) if not is_glob(spec) and folder.is_dir() else None
    if split_files:
        if held_out_given:
            names = ", ".join(p.name for p in split_files.values())
            raise UsageError(f"{spec} holds its own train/valid/test files ({names}); drop --val/--test, "
                             f"or pass --corpus {split_files['train']} with them")
        logger.info("%s holds split files: training on %s%s%s", spec, split_files["train"].name,
                    f", validation on {split_files['val'].name}" if "val" in split_files else "",
                    f", test on {split_files['test'].name}" if "test" in split_files else "")
        train = split_files["train"]
        text = read_text_file(train, encoding_errors)
        if not text.strip():
            raise DataError(f"{train} is empty (no text to read)")
        corpus = Corpus(name=folder.resolve().name, text=text, sources=[str(train)], sha1=sha1_of(train),
                        location=os.path.abspath(folder))
        for role in ("val", "test"):
            if role in split_files:
                setattr(corpus, role, read_held_out(split_files[role], role, encoding_errors, from_option=False))
        return corpus
    files = resolve_files(spec)
    for path in files:  # recorded in config.json and printed: refused now, not at the first save
        _refuse_non_utf8(path, "corpus file")
    parts = []
    for path in files:
        text = read_text_file(path, encoding_errors)
        if text and not text.endswith("\n") and len(files) > 1:
            text += "\n"
        parts.append(text)
    text = "".join(parts)
    if not text.strip():
        what = str(files[0]) if len(files) == 1 else f"the {len(files)} files of '{spec}'"
        raise DataError(f"{what} is empty (no text to read)")
    expanded = os.path.expanduser(spec)
    if len(files) == 1:  # a glob matching one file hashes like that file
        sha1 = sha1_of(files[0])
    else:
        root = glob_root(expanded) if is_glob(spec) else Path(expanded)
        sha1 = files_sha1(files, root)
    return Corpus(name=Path(spec).stem if len(files) == 1 else spec, text=text,
                  sources=[str(p) for p in files], sha1=sha1, location=os.path.abspath(expanded))


# Where a recorded path may point, for messages.
ROOTS_TEXT = "the current folder, the data folder (--data-dir, $RNNLAB_DATA) and the folder of --corpus"


def allowed_roots(data_dir: str | os.PathLike | None = None, corpus: str | os.PathLike | None = None,
                  checkpoint: str | os.PathLike | None = None) -> list[Path]:
    """The folders a path recorded in a checkpoint may point into, all named by the user
    on the command line or in the environment: the current folder, the data folder
    (``data_dir``, ``$RNNLAB_DATA``) and the folder of the ``--corpus`` given. A
    checkpoint is data, not instructions: it never makes rnnlab read elsewhere.

    Not the folder of the ``checkpoint`` itself (the argument is accepted, and ignored, so
    that callers say what they load): a downloaded checkpoint naming a file beside it
    would make rnnlab read, and report on, a file the user never pointed at. A run
    evaluated from another folder than the one it was trained in needs ``--corpus PATH``
    (checked against the recorded SHA-1) or ``--data-dir``. Symlinks are followed before
    the check, and FIFOs and devices are refused by every reader. See docs/bad_inputs.md.
    """
    roots = [Path.cwd()] + [Path(os.path.expanduser(str(d))) for d in (data_dir, os.environ.get("RNNLAB_DATA")) if d]
    if corpus:
        given = os.path.expanduser(str(corpus))
        given_path = glob_root(given) if is_glob(given) else Path(given)
        roots.append(given_path if given_path.is_dir() else given_path.parent)
    return [Path(os.path.realpath(root)) for root in roots]


def is_inside(path: str, roots: list[Path]) -> bool:
    """True when ``path`` (a file, folder or glob pattern, symlinks followed) lies in one of ``roots``."""
    expanded = os.path.expanduser(path)
    if is_glob(expanded):
        if ".." in Path(expanded).parts:
            return False
        expanded = str(glob_root(expanded))
    real = Path(os.path.realpath(expanded))
    return any(real == root or real.is_relative_to(root) for root in roots)


def recorded_location(location: str | None, as_given: str | None, roots: list[Path] | None = None,
                      what: str = "training corpus", hint: str = "--corpus PATH naming it") -> str | None:
    """Where to read a saved model's corpus again: the absolute ``location`` recorded at
    training time while it still exists (so the current folder does not matter), else
    the path ``as_given`` (older checkpoints; a project moved together with its corpus).
    Nothing given (the built-in corpus; held-out text of a split folder) stays ``None``.

    Both come from the checkpoint, so they are read only inside ``roots``
    (:func:`allowed_roots`; by default the current folder and the data folder). A
    recorded location elsewhere is a :class:`DataError` that asks for ``hint`` (and
    ``--corpus PATH``).
    """
    if as_given is None:
        return None
    roots = allowed_roots() if roots is None else roots
    if location and (os.path.exists(location) or (is_glob(location) and globlib.glob(location, recursive=True))):
        if is_inside(location, roots):
            return location
        raise DataError(f"the checkpoint records its {what} at {location}, outside {ROOTS_TEXT}; rnnlab reads "
                        f"no file elsewhere because a checkpoint names it: pass {_hint(hint)}, or run from a "
                        "folder that holds it")
    if as_given in CORPUS_NAMES or is_inside(as_given, roots):
        return as_given
    raise DataError(f"the checkpoint names its {what} {as_given!r}, outside {ROOTS_TEXT}; rnnlab reads no "
                    f"file elsewhere because a checkpoint names it: pass {_hint(hint)}")


def _hint(hint: str) -> str:
    """What to pass: always says ``--corpus PATH`` (the way to name the training text)."""
    return hint if "--corpus" in hint else f"{hint}, or --corpus PATH naming the training corpus"


def reload_corpus(name_or_path: str | None, sources: list[str] | None = None,
                  data_dir: str | os.PathLike | None = None, encoding_errors: str = "strict",
                  val: str | None = None, test: str | None = None) -> Corpus:
    """Load a corpus again for a saved model: a named download (``timemachine``) is
    looked for first where it was found at training time (``sources``); ``val`` /
    ``test`` are the held-out files it was trained with, if any."""
    if (data_dir is None and name_or_path in REMOTE and sources and isinstance(sources[0], str)
            and is_inside(sources[0], allowed_roots()) and Path(sources[0]).is_file()):
        data_dir = Path(sources[0]).parent
    return load_corpus(name_or_path, data_dir=data_dir, encoding_errors=encoding_errors, val=val, test=test)
