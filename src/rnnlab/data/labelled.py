"""Readers for labelled data: texts with a class (CSV/TSV) and token sequences with a tag per token (CoNLL).

* :func:`read_table` reads a delimited file with a header row into
  :class:`LabelledText` records (``text``, ``label``, the file line they start on).
  The separator is ``sep`` when given, else a tab for ``.tsv``/``.tab`` files, else
  detected from the header line (tab, comma, semicolon or ``|``). Quoted fields follow
  the CSV rules (a quoted field may hold the separator, quotes or a newline). Labels
  are kept as the strings found in the file, whatever they look like (``1``, ``pos``,
  ``4.0``).
* :func:`read_conll` reads the CoNLL column format as it is found in the wild:
  whitespace-separated columns, the token first and the tag last (``tag_col`` picks
  another), one token per line, blank lines between sentences, ``-DOCSTART-`` lines
  ignored. Every token line of a file must have the same number of columns. Entity tags
  are returned in IOB2 (``B-`` opens every entity) when the file is IOB1 or IOB2, and as
  they are when the file uses IOBES (``E-``/``S-`` tags); plain tags (parts of speech:
  ``NN``, ``VBD``) as they are. A file mixing the two kinds is refused.

* :func:`read_feature_sequences` reads numeric sequences (speech frames, sensor
  readings): one row per time step with a sequence id, a step number, features and
  the sequence's label.

Every problem is a one-line :class:`~rnnlab.errors.DataError` naming the file and,
where there is one, the line.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlab.errors import DataError, UsageError
from rnnlab.fileio import check_input_file

SEPARATORS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
_DETECTABLE = ("\t", ",", ";", "|")
DOCSTART = "-DOCSTART-"


@dataclass(frozen=True)
class LabelledText:
    """One row of a classification file: the text, its label (a string) and the line it starts on."""

    text: str
    label: str
    line: int


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence of a tagging file: tokens and tags (same length), and the line of its first token."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    line: int


def check_max_len(max_tokens: int | None, tokens: int | None = None, what: str = "the text") -> None:
    """Refuse a ``--max-len`` that is not a positive integer (None: no limit) and, given the
    number of ``tokens`` of one text typed on the command line, a text above it (the rule
    of the readers below: a longer sequence is refused, never cut)."""
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise UsageError(f"--max-len must be a positive integer, got {max_tokens!r:.60}")
    if max_tokens is not None and tokens is not None and tokens > max_tokens:
        raise DataError(f"{what} has {tokens:,} tokens, above the limit of {max_tokens:,} (--max-len)")


def _read_text(path: str | os.PathLike) -> tuple[Path, str]:
    path = check_input_file(os.path.expanduser(os.fspath(path)), str(path))
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: drop a byte-order mark that spreadsheets write
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    return path, text


def resolve_separator(sep: str | None, path: Path, header: str) -> str:
    """The column separator: ``sep`` (a character or a name), else from the suffix, else detected."""
    if sep is not None:  # given: '' is a mistake, not a request to detect
        sep = SEPARATORS.get(sep, sep)
        if len(sep) != 1:
            raise UsageError(f"--sep must be one character or one of {', '.join(SEPARATORS)}, got {sep!r}")
        if sep in "\"\r\n":  # the CSV reader's quote and line ends: a table cut by them has no columns
            raise UsageError(f"--sep cannot be a quote or a line break, got {sep!r}")
        return sep
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    # The header names the columns: the separator is the candidate it contains most often.
    counts = {candidate: header.count(candidate) for candidate in _DETECTABLE}
    best = max(counts, key=counts.get)
    if counts[best] == 0:
        raise DataError(f"{path}: line 1: cannot detect the column separator (no tab, comma, semicolon or '|' "
                        "in the header); give --sep")
    return best


def _column_indices(path, header: list[str], wanted) -> dict[str, int]:
    """``{option: index in header}`` for each ``(option, column name)`` whose name is not None;
    a name missing from the header is a DataError listing the header."""
    columns = {}
    for option, name in wanted:
        if name is None:
            continue
        if name not in header:
            raise DataError(f"{path}: line 1: no column {name!r} ({option}); the header has "
                            f"{', '.join(repr(h) for h in header)}")
        columns[option] = header.index(name)
    return columns


def read_table(path: str | os.PathLike, text_col: str = "text", label_col: str | None = "label",
               sep: str | None = None, max_tokens: int | None = None) -> list[LabelledText]:
    """Rows of a CSV/TSV file with a header, as :class:`LabelledText` (see the module docstring).

    ``label_col=None`` reads texts only (labels are ``""``: for prediction). ``max_tokens``
    refuses a text of more whitespace-separated tokens than that.
    """
    check_max_len(max_tokens)
    path, text = _read_text(path)
    header_line = text.splitlines()[0]
    separator = resolve_separator(sep, path, header_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator)
    try:
        header = [name.strip() for name in next(reader)]
    except csv.Error as exc:
        raise DataError(f"{path}: line 1: {exc}") from None
    columns = _column_indices(path, header, (("--text-col", text_col), ("--label-col", label_col)))
    rows = []
    line = reader.line_num + 1
    try:
        for fields in reader:
            start, line = line, reader.line_num + 1
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank line
            if len(fields) != len(header):
                raise DataError(f"{path}: line {start}: {len(fields)} fields, the header has {len(header)} "
                                f"(separator {separator!r}; quote fields that contain it)")
            value = fields[columns["--text-col"]].strip()
            if not value:
                raise DataError(f"{path}: line {start}: the text is empty")
            if max_tokens is not None and len(value.split()) > max_tokens:
                raise DataError(f"{path}: line {start}: a text of {len(value.split()):,} tokens, above the "
                                f"limit of {max_tokens:,} (--max-len)")
            label = fields[columns["--label-col"]].strip() if "--label-col" in columns else ""
            if "--label-col" in columns and not label:
                raise DataError(f"{path}: line {start}: the label is empty")
            rows.append(LabelledText(value, label, start))
    except csv.Error as exc:
        raise DataError(f"{path}: line {line}: {exc}") from None
    if not rows:
        raise DataError(f"{path}: the file has a header but no rows")
    return rows


# ----------------------------------------------------------------------------------
# numeric sequences


@dataclass(frozen=True, eq=False)
class FeatureSequence:
    """A sequence of feature vectors with one label: ``features (steps, F)`` float32, and the
    line of its first row."""

    features: np.ndarray
    label: str
    line: int
    id: str = ""


def read_feature_sequences(path: str | os.PathLike, id_col: str = "id", step_col: str = "step",
                           label_col: str | None = "label", sep: str | None = None,
                           max_steps: int | None = None, ignore_cols=()) -> list[FeatureSequence]:
    """Sequences of feature vectors from a CSV/TSV file with a header: one row per time step,
    ``id_col`` naming the sequence, ``step_col`` its position (an integer; rows may come in any
    order), ``label_col`` the sequence's label (the same on all its rows), and every other
    column a feature (a number). The chapter's speech-frame case: one row per frame.
    ``label_col=None`` reads unlabelled sequences (labels ``""``); columns named in
    ``ignore_cols`` are not features (a label column when predicting)."""
    check_max_len(max_steps)
    path, text = _read_text(path)
    separator = resolve_separator(sep, path, text.splitlines()[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator)
    header = [name.strip() for name in next(reader)]
    named = _column_indices(path, header, (("id column", id_col), ("step column", step_col),
                                           ("--label-col", label_col)))
    feature_columns = [i for i in range(len(header)) if i not in named.values() and header[i] not in ignore_cols]
    if not feature_columns:
        named_columns = ", ".join(repr(name) for name in (id_col, step_col, label_col) if name is not None)
        raise DataError(f"{path}: line 1: no feature columns besides {named_columns}")
    groups: dict[str, dict] = {}
    line = 2
    try:
        for fields in reader:
            start, line = line, reader.line_num + 1
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if len(fields) != len(header):
                raise DataError(f"{path}: line {start}: {len(fields)} fields, the header has {len(header)}")
            key = fields[named["id column"]].strip()
            try:
                step = int(fields[named["step column"]])
            except ValueError:
                raise DataError(f"{path}: line {start}: step {fields[named['step column']]!r} is not an "
                                "integer") from None
            try:
                vector = [float(fields[i]) for i in feature_columns]
            except ValueError:
                bad = next(i for i in feature_columns if not _is_float(fields[i]))
                raise DataError(f"{path}: line {start}: feature {header[bad]!r} is {fields[bad]!r}, not a "
                                "number") from None
            label = fields[named["--label-col"]].strip() if "--label-col" in named else ""
            group = groups.setdefault(key, {"line": start, "label": label, "steps": {}})
            if label != group["label"]:
                raise DataError(f"{path}: line {start}: sequence {key!r} has label {label!r} here but "
                                f"{group['label']!r} on line {group['line']}")
            if step in group["steps"]:
                raise DataError(f"{path}: line {start}: sequence {key!r} has step {step} twice")
            group["steps"][step] = vector
            if max_steps is not None and len(group["steps"]) > max_steps:
                raise DataError(f"{path}: line {start}: sequence {key!r} is longer than {max_steps:,} steps (--max-len)")
    except csv.Error as exc:
        raise DataError(f"{path}: line {line}: {exc}") from None
    if not groups:
        raise DataError(f"{path}: the file has a header but no rows")
    return [FeatureSequence(np.array([g["steps"][k] for k in sorted(g["steps"])], dtype=np.float32),
                            g["label"], g["line"], key) for key, g in groups.items()]


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


# ----------------------------------------------------------------------------------
# tag schemes


def split_tag(tag: str) -> tuple[str, str]:
    """``("B", "PER")`` for ``B-PER``, ``("O", "")`` for ``O``; ``B_PER`` is accepted too."""
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[0] in "BIES" and tag[1] in "-_":
        return tag[0], tag[2:]
    return "", tag


def is_iobes(tags) -> bool:
    return any(split_tag(tag)[0] in ("E", "S") for tag in tags)


def iob1_to_iob2(tags) -> list[str]:
    """IOB1 (``B-`` only between two adjacent entities of one type) to IOB2 (``B-`` opens
    every entity): an ``I-X`` that does not continue an ``X`` entity becomes ``B-X``.
    IOB2 input comes back unchanged."""
    out = []
    previous_type = None  # the type of the entity the previous token is in (None after O)
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == "I" and previous_type != kind:
            tag = f"B-{kind}"
        out.append(tag)
        previous_type = kind if prefix in ("B", "I") else None
    return out


def _first_lines(tag: str, number: int, seen: dict) -> None:
    """Remember the first line of an entity tag (B-/I-/E-/S-X) and of a plain tag (NN, VBD)."""
    prefix = split_tag(tag)[0]
    kind = "plain" if not prefix else ("iobes" if prefix in ("E", "S") else "entity")
    seen.setdefault(kind, (number, tag))


# ----------------------------------------------------------------------------------
# CoNLL


def read_conll(path: str | os.PathLike, tag_col: int = -1, max_tokens: int | None = None,
               tagged: bool = True) -> list[TaggedSentence]:
    """Sentences of a CoNLL file (see the module docstring). ``tag_col`` counts from 0
    (negative from the end). ``max_tokens`` refuses a longer sentence. ``tagged=False``
    reads tokens only (one or more columns; tags are ``"O"``)."""
    check_max_len(max_tokens)
    path, text = _read_text(path)
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0
    expected_columns = None
    seen: dict[str, tuple[int, str]] = {}  # kind of tag -> (first line, tag)

    def close() -> None:
        nonlocal tokens, tags
        if tokens:
            sentences.append(TaggedSentence(tuple(tokens), tuple(tags), first_line))
        tokens, tags = [], []

    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            close()
            continue
        if fields[0] == DOCSTART:
            close()
            continue
        if expected_columns is None:
            expected_columns = len(fields)
            if tagged and expected_columns < 2:
                raise DataError(f"{path}: line {number}: one column; a tagged CoNLL file has the token first "
                                "and the tag last")
            if tagged and not -expected_columns <= tag_col < expected_columns:
                raise DataError(f"{path}: line {number}: no column {tag_col} (--tag-col) in a line of "
                                f"{expected_columns} columns")
        elif len(fields) != expected_columns:
            raise DataError(f"{path}: line {number}: {len(fields)} columns, expected {expected_columns} "
                            "like the lines before")
        if not tokens:
            first_line = number
        if max_tokens is not None and len(tokens) >= max_tokens:
            raise DataError(f"{path}: line {first_line}: a sentence of more than {max_tokens:,} tokens "
                            "(--max-len); is a blank line missing between sentences?")
        tokens.append(fields[0])
        if tagged:
            tag = fields[tag_col]
            _first_lines(tag, number, seen)
            tags.append(tag)
        else:
            tags.append("O")
    close()
    if not sentences:
        raise DataError(f"{path}: no sentences (only blank or -DOCSTART- lines)")
    if "plain" in seen and ("entity" in seen or "iobes" in seen):
        line, tag = seen["plain"]
        other_line, other = seen.get("entity", seen.get("iobes"))
        raise DataError(f"{path}: line {line}: tag {tag!r} has no B-/I-/E-/S- prefix but line {other_line} has "
                        f"{other!r}: one file mixes entity tags and plain tags (is --tag-col the tag column?)")
    if tagged and "plain" not in seen and "iobes" not in seen:
        sentences = [TaggedSentence(s.tokens, tuple(iob1_to_iob2(s.tags)), s.line) for s in sentences]
    return sentences


__all__ = ["LabelledText", "TaggedSentence", "FeatureSequence", "read_table", "read_feature_sequences",
           "read_conll", "iob1_to_iob2", "split_tag", "is_iobes", "resolve_separator", "check_max_len"]
