"""Resolve a corpus name or path to text.

Sources, in the order :func:`load_corpus` tries them:

* ``pydoc`` (the default): the Python reference documentation that ships with every
  CPython in ``pydoc_data.topics`` (~465 KB of English). Needs no download.
* ``timemachine``: H. G. Wells' *The Time Machine* as used by d2l. Looked up in
  ``data_dir`` / ``$RNNLAB_DATA``, then the user cache, then downloaded; the SHA-1 is
  always verified.
* a UTF-8 file, a folder of text files (``*.txt``, ``*.md``, ``*.rst``, recursively),
  or a glob pattern.
"""
from __future__ import annotations

import glob as globlib
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rnnlab.errors import CorpusNotFoundError, DataError, UsageError
from rnnlab.fileio import file_digest
from rnnlab.progress import logger

DEFAULT_CORPUS = "pydoc"
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")
ENCODING_ERRORS = ("strict", "replace", "ignore")


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
    files, each followed by a newline when it does not end with one).
    """

    name: str
    text: str
    sources: list[str] = field(default_factory=list)
    sha1: str | None = None

    def __len__(self) -> int:
        return len(self.text)


def sha1_of(path: Path) -> str:
    return file_digest(path, "sha1")


def cache_dir() -> Path:
    """User cache folder for downloaded corpora (``$XDG_CACHE_HOME/rnnlab``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnlab"


def _candidate_dirs(data_dir: str | os.PathLike | None) -> list[Path]:
    dirs = []
    if data_dir:
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
            from pydoc_data.topics import topics
        except ImportError as exc:  # some distributions strip pydoc_data
            raise CorpusNotFoundError(
                "the built-in corpus needs the standard module pydoc_data, which this Python "
                "lacks; pass --corpus FILE instead") from exc
        # Sorted keys: the same text on every Python of the same version.
        return "\n\n".join(topics[key].strip("\n") for key in sorted(topics)) + "\n"
    raise UsageError(f"unknown built-in corpus '{name}'")


def read_text_file(path: Path, encoding_errors: str = "strict") -> str:
    """Read a UTF-8 file; undecodable bytes raise a :class:`DataError` saying where."""
    if encoding_errors not in ENCODING_ERRORS:
        raise UsageError(f"unknown --encoding-errors '{encoding_errors}'; choose one of {', '.join(ENCODING_ERRORS)}")
    data = path.read_bytes()
    try:
        return data.decode("utf-8", errors=encoding_errors)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{path} is not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} "
            f"(line {line}); re-encode it as UTF-8 or pass --encoding-errors replace") from None


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _resolve_files(spec: str) -> list[Path]:
    if _is_glob(spec):
        files = sorted(Path(p) for p in globlib.glob(os.path.expanduser(spec), recursive=True))
        files = [p for p in files if p.is_file()]
        if not files:
            raise CorpusNotFoundError(f"no files match the pattern '{spec}'")
        return files
    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        files = sorted(p for p in path.rglob("*")
                       if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise DataError(f"folder {path} has no text files ({', '.join('*' + s for s in TEXT_SUFFIXES)})")
        return files
    if path.is_file():
        return [path]
    raise CorpusNotFoundError(
        f"corpus '{spec}' is neither a file, a folder, a glob nor a known name "
        f"({', '.join(CORPUS_NAMES)})")


def load_corpus(name_or_path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
                encoding_errors: str = "strict", download: bool = True) -> Corpus:
    """Load a corpus by name (``pydoc``, ``timemachine``) or path (file, folder, glob).

    Raises :class:`CorpusNotFoundError` for missing sources and :class:`DataError` for
    empty or undecodable text.
    """
    spec = DEFAULT_CORPUS if name_or_path is None else str(name_or_path)
    if spec in BUILTIN_NAMES:
        return Corpus(name=spec, text=builtin_text(spec), sources=[f"builtin:{spec}"])
    if spec in REMOTE:
        path = fetch_remote(spec, data_dir=data_dir, download=download)
        text = read_text_file(path, encoding_errors)
        return Corpus(name=spec, text=text, sources=[str(path)], sha1=REMOTE[spec].sha1)
    files = _resolve_files(spec)
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
    sha1 = sha1_of(files[0]) if len(files) == 1 else None
    return Corpus(name=Path(spec).stem if len(files) == 1 else spec, text=text,
                  sources=[str(p) for p in files], sha1=sha1)


def reload_corpus(name_or_path: str | None, sources: list[str] | None = None,
                  data_dir: str | os.PathLike | None = None, encoding_errors: str = "strict") -> Corpus:
    """Load a corpus again for a saved model: a named download (``timemachine``) is
    looked for first where it was found at training time (``sources``)."""
    if data_dir is None and name_or_path in REMOTE and sources and Path(sources[0]).is_file():
        data_dir = Path(sources[0]).parent
    return load_corpus(name_or_path, data_dir=data_dir, encoding_errors=encoding_errors)
