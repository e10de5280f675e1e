"""Hypothesis fuzzing of the readers of outside files: random bytes and random edits of
valid files raise nothing but rnnlab's documented errors (:class:`rnnlab.errors.RnnlabError`
and its subclasses), for the ARPA reader, a checkpoint's ``config.json`` (loaded through
``rnnlab.load`` and the n-gram store), the forecasting CSV reader, the corpus reader and
the readers of labelled data (CoNLL, CSV/TSV tables, per-step feature sequences)."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import rnnlab  # noqa: E402
from rnnlab.cli import main  # noqa: E402
from rnnlab.errors import RnnlabError  # noqa: E402

TEXT = "the quick brown fox jumps over the lazy dog. " * 40
FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ARPA = ("\n\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n-0.6\t<s>\t-0.3\n-0.5\ta\t-0.2\n-0.7\tb\t-0.1\n"
        "-0.9\t</s>\n\n\\2-grams:\n-0.3\t<s> a\n-0.2\ta b\n\n\\end\\\n").encode()
CSV = b"date,value\n2024-01-01,1.5\n2024-01-02,2.0\n2024-01-03,2.5\n2024-01-04,3.0\n2024-01-05,2.75\n" * 3


CONLL = (b"-DOCSTART- -X- O O\n\nI PRP O\nlike VBP O\neating VBG O\napple NN B-FOOD\n\n"
         b"The DT O\nApple NNP B-ORG\nis VBZ O\na DT O\ngreat JJ O\ncompany NN O\n\n")
TABLE = b'text,label\n"i like it, a lot",pos\nawful,neg\n"so ""great""",pos\nmeh,neg\n'
FRAMES = b"id,step,f1,f2,label\na,0,0.1,0.2,x\na,1,0.3,0.4,x\nb,0,1.0,-1.0,y\nb,1,0.5,0.5,y\n"


def edits(data: bytes):
    """Random edits of ``data``: bytes replaced, deleted, inserted, a cut, a duplicated span."""
    @st.composite
    def edited(draw) -> bytes:
        result = bytearray(data)
        for _ in range(draw(st.integers(1, 6))):
            kind = draw(st.sampled_from(["replace", "delete", "insert", "truncate", "duplicate"]))
            at = draw(st.integers(0, max(len(result) - 1, 0)))
            if kind == "replace" and result:
                result[at] = draw(st.integers(0, 255))
            elif kind == "delete" and result:
                del result[at:at + draw(st.integers(1, 8))]
            elif kind == "insert":
                result[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
                    [b"\t", b"\n", b" ", b"-", b"nan", b"inf", b"1e999", b"\\", b"\\end\\", b"ngram 3=1", b",", b"\x00",
                     b"\xff", b'"', b"{", b"}", b"[", b"-99", b"<unk>"]))
            elif kind == "truncate":
                del result[at:]
            elif kind == "duplicate" and result:
                end = min(len(result), at + draw(st.integers(1, 40)))
                result[end:end] = result[at:end]
        return bytes(result)
    return edited()


def documented_errors_only(call) -> None:
    try:
        call()
    except RnnlabError:
        pass


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "fox.txt").write_text(TEXT)
    assert main(["-q", "train", "--corpus", str(root / "fox.txt"), "--model", "gru", "--hidden", "4", "--layers", "1",
                 "--embed", "4", "--batch-size", "2", "--num-steps", "8", "--sample-length", "0", "--device", "cpu",
                 "--precision", "fp32", "--max-steps", "1", "--out", str(root / "lm")]) == 0
    assert main(["-q", "ngram", "train", "--corpus", str(root / "fox.txt"), "--order", "2", "--out",
                 str(root / "ng")]) == 0
    return root


def _write(data: bytes, name: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="rnnlab-fuzz-"))
    (folder / name).write_bytes(data)
    return folder / name


@FUZZ
@given(st.binary(max_size=400) | edits(ARPA))
def test_arpa_reader(data):
    from rnnlab.ngram.arpa import read_arpa
    path = _write(data, "model.arpa")
    try:
        documented_errors_only(lambda: read_arpa(path, mode="raw", token="word"))
    finally:
        shutil.rmtree(path.parent)


@FUZZ
@given(st.binary(max_size=300) | edits(CSV))
def test_forecasting_csv_reader(data):
    from rnnlab.forecasting.series import load_series
    path = _write(data, "series.csv")
    try:
        documented_errors_only(lambda: load_series(f"{path}:value"))
        documented_errors_only(lambda: load_series(str(path), fill="interpolate"))
    finally:
        shutil.rmtree(path.parent)


@FUZZ
@given(st.binary(max_size=300) | edits(TEXT[:200].encode() + "é ü 中文\n".encode()))
def test_corpus_reader(data):
    path = _write(data, "corpus.txt")
    try:
        documented_errors_only(lambda: rnnlab.load_corpus(str(path)))
        documented_errors_only(lambda: rnnlab.load_corpus(str(path.parent), val=str(path)))
    finally:
        shutil.rmtree(path.parent)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                           lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=5), children, max_size=3), max_leaves=6)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node[:4]):
            yield from _paths(value, prefix + (index,))


@st.composite
def config_edits(draw, original: dict):
    """``original`` with values at random key paths replaced or deleted."""
    config = json.loads(json.dumps(original))
    paths = [p for p in _paths(config) if p and p[0] not in ("format", "kind", "files")]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        node = config
        try:
            for key in path[:-1]:
                node = node[key]
            if draw(st.booleans()) and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = draw(JSON_VALUES)
        except (KeyError, IndexError, TypeError):  # an earlier edit changed the path
            pass
    return json.dumps(config).encode()


def _fuzz_config(folders, name: str, load, data_strategy):
    original = (folders / name / "config.json").read_bytes()

    @FUZZ
    @given(st.data())
    def run(data):
        choice = data.draw(st.sampled_from(["bytes", "edit", "json"]))
        content = (data.draw(st.binary(max_size=300)) if choice == "bytes" else
                   data.draw(edits(original)) if choice == "edit" else data.draw(data_strategy))
        folder = Path(tempfile.mkdtemp(prefix="rnnlab-fuzz-")) / name
        shutil.copytree(folders / name, folder)
        try:
            (folder / "config.json").write_bytes(content)
            documented_errors_only(lambda: load(folder))
        finally:
            shutil.rmtree(folder.parent)
    run()


def test_checkpoint_config_json(folders):
    original = json.loads((folders / "lm" / "config.json").read_text())

    def load(folder):
        lm = rnnlab.load(folder)
        lm.generate("the", 2, seed=0)
    _fuzz_config(folders, "lm", load, config_edits(original))


def test_ngram_config_json(folders):
    from rnnlab.ngram import store
    original = json.loads((folders / "ng" / "config.json").read_text())

    def load(folder):
        model = store.load(folder)
        model.evaluate([1, 2, 3])
    _fuzz_config(folders, "ng", load, config_edits(original))


@pytest.mark.parametrize("fill", ["interpolate", "drop"])
def test_a_csv_without_any_number_is_a_data_error(tmp_path, fill):
    """Found by the fuzzer: ``--fill interpolate`` of a column with no number at all
    raised NumPy's ValueError ("array of sample points is empty")."""
    from rnnlab.errors import DataError
    from rnnlab.forecasting.series import load_series
    path = tmp_path / "series.csv"
    path.write_bytes(b"\x00\n\x00")
    with pytest.raises(DataError, match="no numeric value at all"):
        load_series(str(path), fill=fill)


@FUZZ
@given(st.binary(max_size=300) | edits(CONLL))
def test_conll_reader(data):
    from rnnlab.data.labelled import read_conll
    path = _write(data, "train.conll")
    try:
        documented_errors_only(lambda: read_conll(path))
        documented_errors_only(lambda: read_conll(path, tag_col=1, max_tokens=4))
    finally:
        shutil.rmtree(path.parent)


@FUZZ
@given(st.binary(max_size=300) | edits(TABLE) | edits(FRAMES))
def test_table_and_frame_readers(data):
    from rnnlab.data.labelled import read_feature_sequences, read_table
    path = _write(data, "data.csv")
    try:
        documented_errors_only(lambda: read_table(path))
        documented_errors_only(lambda: read_table(path, sep="\t", label_col=None))
        documented_errors_only(lambda: read_feature_sequences(path))
    finally:
        shutil.rmtree(path.parent)
