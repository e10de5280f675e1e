"""Prepared corpora (rnnlab.data.prepare): streaming = in memory, manifest, reuse, crash safety, memory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.data import prepare as prep
from rnnlab.data.batches import BatchIterator
from rnnlab.data.corpus import load_corpus
from rnnlab.data.dataset import _token_stream, prepare_text
from rnnlab.errors import CorpusNotFoundError, DataError, UsageError
from rnnlab.fileio import file_digest

# Multi-byte characters (2, 3 and 4 UTF-8 bytes), all three line breaks, word characters
# of several scripts, punctuation: every kind of cut a chunk edge can make.
ALPHABET = "ab Z_9é漢😀\n\r\t.,-'"
MODES_TOKENS = [(m, t) for m in ("raw", "d2l") for t in ("char", "word", "byte")]


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def sample_text(n_chars: int = 20_000, seed: int = 0) -> str:
    """Text with a realistic mix: built-in corpus words, multi-byte characters, CRLF lines."""
    words = load_corpus("pydoc").text[:60_000].split()
    rng = np.random.default_rng(seed)
    extra = ["été", "漢字", "😀!", "naïve,", "x_y", "\r\n", "\n", "\r", "  "]
    parts = []
    while sum(map(len, parts)) < n_chars:
        parts.append(words[rng.integers(len(words))] if rng.random() < 0.8 else extra[rng.integers(len(extra))])
        parts.append(" " if rng.random() < 0.85 else "\n")
    return "".join(parts)


def streamed(files, mode, token, chunk_bytes, start=None):
    stream = prep._TokenStream([Path(f) for f in files], mode, token, chunk_bytes, "strict")
    pieces = [(mark, tokens) for mark, tokens, _ in stream.chunks(start)]
    return pieces


def flat(pieces, token):
    tokens = [t for _, t in pieces]
    if token == "word":
        return [w for part in tokens for w in part]
    return np.concatenate(tokens).tolist() if tokens else []


# ----------------------------------------------------------------------------------
# chunk edges


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(alphabet=ALPHABET, max_size=60), min_size=1, max_size=3), st.integers(1, 9),
       st.sampled_from(MODES_TOKENS), st.data())
def test_chunk_edges_give_the_in_memory_tokens(texts, chunk_bytes, mode_token, data):
    """Tiny chunks cut UTF-8 sequences, words, CRLF pairs and lines anywhere: the stream's
    tokens are those of the whole text (several files joined as load_corpus joins them),
    and restarting from any chunk mark gives the rest of them (the vocabulary's re-read)."""
    mode, token = mode_token
    with tempfile.TemporaryDirectory() as tmp:
        files = [write(Path(tmp) / f"{i}.txt", t) for i, t in enumerate(texts)]
        joined = "".join(t + ("\n" if len(texts) > 1 and t and not t.endswith("\n") else "") for t in texts)
        expected = _token_stream(joined, mode, token)
        expected = list(expected) if token == "word" else expected.tolist()
        pieces = streamed(files, mode, token, chunk_bytes)
        assert flat(pieces, token) == expected
        # marks are None where the carried text is longer than a chunk (not kept); the first never is
        k = data.draw(st.sampled_from([i for i, (mark, _) in enumerate(pieces) if mark is not None]))
        before = sum(len(t) for _, t in pieces[:k])
        assert flat(streamed(files, mode, token, chunk_bytes, start=pieces[k][0]), token) == expected[before:]


@pytest.mark.parametrize("mode,token", MODES_TOKENS)
def test_same_ids_and_vocabulary_as_in_memory(tmp_path, mode, token):
    source = write(tmp_path / "text.txt", sample_text())
    out = tmp_path / "prepared"
    summary = prep.prepare_corpus(source, out, mode=mode, token=token, chunk_bytes=1001, min_freq=2)
    data = prep.open_prepared(out, verify=True)
    ref = prepare_text(load_corpus(str(source)), mode=mode, token=token, min_freq=2)
    assert data.vocab == ref.vocab
    for split in ("train", "val", "test"):
        assert isinstance(data.part(split), np.memmap) or len(data.part(split)) == 0
        assert data.part(split).dtype == ref.part(split).dtype
        assert np.array_equal(data.part(split), ref.part(split)), split
    assert summary["num_tokens"] == ref.info["num_tokens"] and data.info["train_tokens"] == len(ref.train)


@pytest.mark.parametrize("mode,token", [("d2l", "char"), ("raw", "word")])
def test_lines_and_words_longer_than_a_chunk(tmp_path, mode, token):
    """A line (d2l) or word (raw words) spanning many chunks is carried whole; the
    vocabulary's re-read then starts from an earlier chunk whose carry was short."""
    long_piece = "x" * 3000 if token == "word" else ("Lorem ipsum, dolor sit amet " * 200)
    source = write(tmp_path / "text.txt", (sample_text(4000) + long_piece + "\n") * 3 + sample_text(2000, 5))
    prep.prepare_corpus(source, tmp_path / "out", mode=mode, token=token, chunk_bytes=100)
    data = prep.open_prepared(tmp_path / "out")
    ref = prepare_text(load_corpus(str(source)), mode=mode, token=token)
    assert data.vocab == ref.vocab
    assert all(np.array_equal(data.part(s), ref.part(s)) for s in ("train", "val", "test"))


@pytest.mark.parametrize("split", ["d2l", "0.5,0.3,0.1"])
def test_other_splits_and_a_folder_of_files(tmp_path, split):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    write(folder / "a.txt", sample_text(3000, 1))
    write(folder / "sub" / "b.md", sample_text(3000, 2).rstrip("\n"))  # joined with a newline added
    prep.prepare_corpus(folder, tmp_path / "out", token="word", split=split, chunk_bytes=333)
    data = prep.open_prepared(tmp_path / "out")
    ref = prepare_text(load_corpus(str(folder)), token="word", split=split)
    assert data.vocab == ref.vocab
    assert all(np.array_equal(data.part(s), ref.part(s)) for s in ("train", "val", "test"))


def test_split_folder_gives_the_files_split(tmp_path):
    folder = tmp_path / "ptb"
    folder.mkdir()
    for name, seed in (("ptb.train.txt", 1), ("ptb.valid.txt", 2), ("ptb.test.txt", 3)):
        write(folder / name, sample_text(2000, seed))
    prep.prepare_corpus(folder, tmp_path / "out", mode="d2l", token="word", chunk_bytes=100)
    data = prep.open_prepared(tmp_path / "out")
    ref = prepare_text(load_corpus(str(folder)), mode="d2l", token="word")
    assert data.split == ref.split == "files" and data.vocab == ref.vocab
    assert all(np.array_equal(data.part(s), ref.part(s)) for s in ("train", "val", "test"))


def test_vocab_from_an_earlier_folder(tmp_path):
    first = write(tmp_path / "a.txt", sample_text(5000, 1))
    second = write(tmp_path / "b.txt", sample_text(5000, 2) + "\u0416")  # a character first never saw
    prep.prepare_corpus(first, tmp_path / "A")
    prep.prepare_corpus(second, tmp_path / "B", vocab_from=tmp_path / "A", split="d2l")
    a, b = prep.open_prepared(tmp_path / "A"), prep.open_prepared(tmp_path / "B")
    ref = prepare_text(load_corpus(str(second)), vocab=a.vocab, split="d2l")
    assert b.vocab == a.vocab and np.array_equal(b.train, ref.train) and b.train[-1] == 0  # <unk>
    assert prep.read_manifest(tmp_path / "B")["settings"]["vocab_from"]["manifest_sha1"] == prep.manifest_sha1(
        tmp_path / "A")
    assert prep.prepare_corpus(second, tmp_path / "B", vocab_from=tmp_path / "A", split="d2l")["reused"]
    write(first, sample_text(5000, 3))  # the vocabulary folder prepared again: B is rebuilt with it
    prep.prepare_corpus(first, tmp_path / "A")
    again = prep.prepare_corpus(second, tmp_path / "B", vocab_from=tmp_path / "A", split="d2l")
    assert "--vocab folder" in again["rebuilt"] and prep.open_prepared(tmp_path / "B").vocab == prep.open_prepared(
        tmp_path / "A").vocab
    with pytest.raises(UsageError, match="prepared with --mode raw --token char, not --mode raw --token word"):
        prep.prepare_corpus(second, tmp_path / "C", token="word", vocab_from=tmp_path / "A")


# ----------------------------------------------------------------------------------
# bpe / unigram: the tokenizer learnt from the training split's characters, streamed

SUBWORD_TEXT = None


def subword_text() -> str:
    global SUBWORD_TEXT
    if SUBWORD_TEXT is None:
        SUBWORD_TEXT = sample_text(12_000, 4)
    return SUBWORD_TEXT


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["bpe", "unigram"]), st.sampled_from(["raw", "d2l"]), st.integers(64, 4000),
       st.sampled_from(["0.9,0.05,0.05", "0.5,0.3,0.1", "d2l"]))
def test_subword_tokens_streamed_are_the_in_memory_ones(kind, mode, chunk_bytes, split):
    """Chunks of any size: the streamed tokenizer, vocabulary and ids equal prepare_text's (the
    stream is cut only where the pieces' tokens are the whole text's, and each split's text
    is tokenized on its own, as in memory). For unigram the library's trainer is not
    reproducible to the last digit even on one text twice (its scores differ by ~1e-15), and
    a run of characters can have two best segmentations of equal score (16 '*' as 4 + 12 or
    12 + 4, found here): there the same tokens are learnt, and each part's ids are a
    segmentation of the same text with the same total log-probability as the in-memory ones."""
    with tempfile.TemporaryDirectory() as tmp:
        source = write(Path(tmp) / "text.txt", subword_text())
        prep.prepare_corpus(source, Path(tmp) / "out", mode=mode, token=kind, split=split, chunk_bytes=chunk_bytes,
                            vocab_size=300, show_progress=False)
        data = prep.open_prepared(Path(tmp) / "out", verify=True)
        ref = prepare_text(load_corpus(str(source)), mode=mode, token=kind, split=prep.parse_split(split),
                           vocab_size=300)
        if kind == "bpe":
            assert data.vocab.subword.to_json() == ref.vocab.subword.to_json()
            assert data.vocab.idx_to_token == ref.vocab.idx_to_token
        else:  # the same tokens learnt; the ids compared with the folder's own tokenizer in memory
            assert set(data.vocab.idx_to_token) == set(ref.vocab.idx_to_token)
            ref = prepare_text(load_corpus(str(source)), mode=mode, token=kind, split=prep.parse_split(split),
                               vocab=data.vocab)
        for part in ("train", "val", "test"):
            if kind == "bpe":
                assert np.array_equal(data.part(part), ref.part(part)), part
            else:
                streamed, in_memory = np.asarray(data.part(part)), np.asarray(ref.part(part))
                joined = ["".join(data.vocab.to_tokens(ids.tolist())) for ids in (streamed, in_memory)]
                assert joined[0] == joined[1], part  # the same text, in byte symbols
                assert unigram_score(data.vocab, streamed) == pytest.approx(unigram_score(data.vocab, in_memory),
                                                                            abs=1e-9), part


def unigram_score(vocab, ids) -> float:
    """Total log-probability of the token ``ids`` under ``vocab``'s unigram tokenizer."""
    scores = dict(map(tuple, json.loads(vocab.subword.to_json())["model"]["vocab"]))
    return sum(scores[vocab.idx_to_token[i]] for i in ids.tolist())


@pytest.mark.parametrize("text", [
    "apple\r\nbanana\r\ncherry\r\n" * 300,                 # CRLF word lists: no space anywhere
    "\u3000\u3000第一段。\n\n\u3000\u3000第二段，東京。\n" * 200,  # indented paragraphs, no ASCII space
    "alpha,beta;gamma|" * 500 + "\n" + "x" * 3000])              # one long run that cannot be cut
def test_subword_texts_with_few_places_to_cut(tmp_path, text):
    source = write(tmp_path / "text.txt", text)
    prep.prepare_corpus(source, tmp_path / "out", token="bpe", chunk_bytes=97, vocab_size=280, show_progress=False)
    data = prep.open_prepared(tmp_path / "out", verify=True)
    ref = prepare_text(load_corpus(str(source)), token="bpe", vocab_size=280)
    assert data.vocab.subword.to_json() == ref.vocab.subword.to_json()
    for part in ("train", "val", "test"):
        assert np.array_equal(data.part(part), ref.part(part)), part


def test_subword_split_folder_and_refusals(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    for name, seed in (("train.txt", 5), ("valid.txt", 6), ("test.txt", 7)):
        write(folder / name, sample_text(4000, seed))
    prep.prepare_corpus(folder, tmp_path / "out", token="unigram", vocab_size=300, chunk_bytes=333,
                        show_progress=False)
    data = prep.open_prepared(tmp_path / "out")
    ref = prepare_text(load_corpus(str(folder)), token="unigram", vocab=data.vocab)
    for part in ("train", "val", "test"):
        assert len(data.part(part)) and np.array_equal(data.part(part), ref.part(part)), part
    with pytest.raises(UsageError, match="--min-freq applies to char, word and byte tokens"):
        prep.prepare_corpus(folder, tmp_path / "mf", token="bpe", min_freq=2)
    with pytest.raises(UsageError, match="--min-freq applies to char, word and byte tokens"):
        prepare_text(sample_text(2000), token="unigram", min_freq=2)
    assert not (tmp_path / "mf").exists()


def test_subword_folder_keeps_its_tokenizer_checked(tmp_path):
    source = write(tmp_path / "text.txt", subword_text())
    out = tmp_path / "bpe"
    summary = prep.prepare_corpus(source, out, token="bpe", vocab_size=280, show_progress=False)
    manifest = prep.read_manifest(out)
    assert manifest["tokenizer"]["file"] == "tokenizer.json" and manifest["settings"]["vocab_size"] == 280
    assert summary["vocab_size"] == len(prep.open_prepared(out).vocab) >= 280
    assert prep.prepare_corpus(source, out, token="bpe", vocab_size=280, show_progress=False)["reused"]
    with pytest.raises(UsageError, match="vocab_size 280, now 300"):
        prep.prepare_corpus(source, out, token="bpe", vocab_size=300, show_progress=False)
    # --vocab: another text encoded with the first folder's tokenizer and vocabulary
    other = write(tmp_path / "other.txt", sample_text(3000, 9))
    prep.prepare_corpus(other, tmp_path / "again", token="bpe", vocab_from=out, show_progress=False)
    reused = prep.open_prepared(tmp_path / "again")
    assert reused.vocab.idx_to_token == prep.open_prepared(out).vocab.idx_to_token
    ref = prepare_text(load_corpus(str(other)), token="bpe", vocab=prep.open_prepared(out).vocab)
    assert np.array_equal(reused.train, ref.train)
    with pytest.raises(UsageError, match="--vocab-size learns a tokenizer; --vocab reuses one"):
        prep.prepare_corpus(other, tmp_path / "x", token="bpe", vocab_from=out, vocab_size=300)
    # the tokenizer file is verified: changed, it is refused; a rerun rebuilds the folder
    tokenizer = out / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text(encoding="utf-8").replace('"BPE"', '"BPE" '), encoding="utf-8")
    with pytest.raises(DataError, match="tokenizer.json"):
        prep.open_prepared(out)
    rebuilt = prep.prepare_corpus(source, out, token="bpe", vocab_size=280, show_progress=False)
    assert "tokenizer.json" in rebuilt["rebuilt"] and prep.open_prepared(out, verify=True).vocab.subword is not None
    # a tokenizer edited (and its checksum with it) to add tokens or a normalizer is refused
    manifest = prep.read_manifest(out)
    for key, value in (("added_tokens", [{"id": 280, "content": "zzqq", "single_word": False, "lstrip": False,
                                          "rstrip": False, "normalized": False, "special": False}]),
                       ("normalizer", {"type": "Lowercase"})):
        document = json.loads(tokenizer.read_text(encoding="utf-8"))
        document[key] = value
        raw = json.dumps(document).encode("utf-8")
        tokenizer.write_bytes(raw)
        import hashlib
        edited = {**manifest, "tokenizer": {"file": "tokenizer.json", "bytes": len(raw),
                                            "sha256": hashlib.sha256(raw).hexdigest()}}
        (out / "manifest.json").write_text(json.dumps(edited), encoding="utf-8")
        with pytest.raises(DataError, match="added tokens, a normalizer or a post-processor"):
            prep.open_prepared(out)
    rebuilt = prep.prepare_corpus(source, out, token="bpe", vocab_size=280, show_progress=False)
    assert rebuilt["rebuilt"] and prep.open_prepared(out, verify=True).vocab.subword is not None
    # back to characters: the tokenizer file goes with the rest
    prep.prepare_corpus(source, out, overwrite=True, show_progress=False)
    assert not tokenizer.exists() and "tokenizer" not in prep.read_manifest(out)


def test_undecodable_byte_is_reported_where_it_is(tmp_path):
    source = tmp_path / "bad.txt"
    source.write_bytes(b"line one\nline two\n" * 50 + b"\xff tail\n")
    with pytest.raises(DataError) as streamed_error:
        prep.prepare_corpus(source, tmp_path / "out", chunk_bytes=7)
    with pytest.raises(DataError) as memory_error:
        load_corpus(str(source))
    assert str(streamed_error.value) == str(memory_error.value)  # same offset and line
    assert not (tmp_path / "out").exists()
    prep.prepare_corpus(source, tmp_path / "out", encoding_errors="replace", chunk_bytes=7, split="d2l")
    assert prep.open_prepared(tmp_path / "out").vocab["\ufffd"] > 0


# ----------------------------------------------------------------------------------
# the manifest, reuse, rebuild, crash safety


def test_manifest_records_what_was_prepared(tmp_path):
    source = write(tmp_path / "text.txt", sample_text(8000))
    out = tmp_path / "out"
    prep.prepare_corpus(source, out, token="word")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "rnnlab.corpus/1"
    assert manifest["preprocessing"] == {"mode": "raw", "token": "word"} and manifest["dtype"] == "uint16"
    n = manifest["num_tokens"]
    assert manifest["boundaries"] == [int(n * 0.9), int(n * 0.9) + int(n * 0.05), int(n * 0.9) + 2 * int(n * 0.05)]
    for split in ("train", "val", "test"):
        part = manifest["splits"][split]
        (shard,) = part["shards"]
        assert shard["file"] == f"{split}-00000.bin" and shard["num_tokens"] == part["num_tokens"]
        assert shard["bytes"] == (out / shard["file"]).stat().st_size == 2 * part["num_tokens"]
        assert shard["sha256"] == file_digest(out / shard["file"], "sha256")
    (record,) = manifest["source"]["files"]
    assert record["path"] == str(source) and record["bytes"] == source.stat().st_size
    assert record["mtime_ns"] == source.stat().st_mtime_ns and record["sha1"] == file_digest(source, "sha1")
    assert manifest["source"]["sha1"] == load_corpus(str(source)).sha1
    assert manifest["vocab"]["idx_to_token"][0] == "<unk>"
    assert sorted(os.listdir(out)) == ["manifest.json", "test-00000.bin", "train-00000.bin", "val-00000.bin"]


def test_folder_source_hash_is_load_corpus_hash(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    write(folder / "a.txt", "alpha beta\n")
    write(folder / "b.txt", "gamma delta\n")
    prep.prepare_corpus(folder, tmp_path / "out")
    assert prep.read_manifest(tmp_path / "out")["source"]["sha1"] == load_corpus(str(folder)).sha1


def test_rerun_reuses_and_changed_input_rebuilds(tmp_path):
    source = write(tmp_path / "text.txt", sample_text(5000))
    out = tmp_path / "out"
    assert prep.prepare_corpus(source, out)["reused"] is False
    again = prep.prepare_corpus(source, out)
    assert again["reused"] is True and again["rebuilt"] is None
    # same size and modification time, other content: caught by the content hash
    stat = source.stat()
    source.write_bytes(source.read_bytes().replace(b"a", b"b", 1))
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    rebuilt = prep.prepare_corpus(source, out)
    assert rebuilt["reused"] is False and "content" in rebuilt["rebuilt"]
    write(source, sample_text(6000))
    assert "changed" in prep.prepare_corpus(source, out)["rebuilt"]
    data = prep.open_prepared(out)
    assert np.array_equal(data.train, prepare_text(load_corpus(str(source))).train)
    with pytest.raises(UsageError, match="other options.*--overwrite"):
        prep.prepare_corpus(source, out, token="word")
    assert prep.prepare_corpus(source, out, token="word", overwrite=True)["rebuilt"] == "--overwrite"
    (out / "train-00000.bin").write_bytes(b"xx")  # a damaged shard is not reused
    assert prep.prepare_corpus(source, out, token="word")["reused"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "text.txt"]  # no temporary folder left


def test_refuses_a_folder_that_is_not_a_prepared_corpus(tmp_path):
    source = write(tmp_path / "text.txt", "some text\n" * 30)
    (tmp_path / "mine").mkdir()
    write(tmp_path / "mine" / "notes.txt", "keep me")
    with pytest.raises(UsageError, match="not an rnnlab prepared corpus.*'notes.txt'"):
        prep.prepare_corpus(source, tmp_path / "mine")
    with pytest.raises(UsageError, match="is a file"):
        prep.prepare_corpus(source, source)
    with pytest.raises(UsageError, match="out_dir must be a folder path, got NoneType"):
        prep.prepare_corpus(source, None)
    prep.prepare_corpus(source, tmp_path / "out")
    write(tmp_path / "out" / "notes.txt", "user file")
    with pytest.raises(UsageError, match="'notes.txt', which rnnlab did not write"):
        prep.prepare_corpus(source, tmp_path / "out", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    prep.prepare_corpus(source, tmp_path / "empty")  # an empty folder is used
    assert prep.is_prepared(tmp_path / "empty")


def test_interrupted_preparation_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    source = write(tmp_path / "text.txt", sample_text(20_000))
    calls = {"n": 0}
    real_write = prep._ShardWriter.write

    def interrupted(self, ids):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the encoding pass
        real_write(self, ids)

    monkeypatch.setattr(prep._ShardWriter, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare_corpus(source, tmp_path / "out", chunk_bytes=2000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.txt"]
    with pytest.raises(CorpusNotFoundError):
        load_corpus(str(tmp_path / "out"))
    # an interrupted rebuild keeps the old complete folder
    monkeypatch.setattr(prep._ShardWriter, "write", real_write)
    prep.prepare_corpus(source, tmp_path / "out", chunk_bytes=2000)
    before = prep.manifest_sha1(tmp_path / "out")
    calls["n"] = 0
    monkeypatch.setattr(prep._ShardWriter, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare_corpus(source, tmp_path / "out", overwrite=True, chunk_bytes=2000)
    assert prep.manifest_sha1(tmp_path / "out") == before
    prep.open_prepared(tmp_path / "out", verify=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "text.txt"]


def test_killed_preparation_leaves_only_a_hidden_temporary_folder(tmp_path):
    """SIGKILL cannot be cleaned up after: what is left is a .rnnlab-tmp-... sibling
    that no command reads, never the --out folder."""
    source = write(tmp_path / "text.txt", sample_text(20_000))
    script = textwrap.dedent(f"""
        import os, signal
        from rnnlab.data import prepare as prep
        real = prep._ShardWriter.write
        def write(self, ids):
            real(self, ids)
            os.kill(os.getpid(), signal.SIGKILL)
        prep._ShardWriter.write = write
        prep.prepare_corpus({str(source)!r}, {str(tmp_path / 'out')!r}, chunk_bytes=2000)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9
    left = sorted(p.name for p in tmp_path.iterdir())
    assert "out" not in left and all(n == "text.txt" or n.startswith(".rnnlab-tmp-out-") for n in left)
    assert prep.prepare_corpus(source, tmp_path / "out")["reused"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "text.txt"]  # the next run removed it


def test_open_prepared_checks_the_shards(tmp_path):
    source = write(tmp_path / "text.txt", sample_text(5000))
    out = tmp_path / "out"
    prep.prepare_corpus(source, out)
    shard = out / "train-00000.bin"
    data = bytearray(shard.read_bytes())
    data[10] ^= 1
    shard.write_bytes(bytes(data))
    prep.open_prepared(out)  # sizes only: cheap
    with pytest.raises(DataError, match="does not match the checksum in manifest.json"):
        prep.open_prepared(out, verify=True)
    shard.write_bytes(bytes(data[:-1]))
    with pytest.raises(DataError, match="has .* bytes, the manifest says"):
        prep.open_prepared(out)
    with pytest.raises(DataError, match="not a prepared corpus"):
        prep.open_prepared(tmp_path)


# ----------------------------------------------------------------------------------
# --corpus DIR: the same data, batches and provenance as the text


def test_load_corpus_and_prepare_text_read_a_prepared_folder(tmp_path):
    source = write(tmp_path / "text.txt", sample_text(20_000))
    out = tmp_path / "out"
    prep.prepare_corpus(source, out, token="word", mode="d2l")
    corpus = load_corpus(str(out))
    assert corpus.sha1 == file_digest(out / "manifest.json", "sha1") and corpus.location == str(out)
    data = prepare_text(corpus, mode="d2l", token="word")
    ref = prepare_text(load_corpus(str(source)), mode="d2l", token="word")
    assert isinstance(data.train, np.memmap) and np.array_equal(data.train, ref.train)
    assert prepare_text(corpus, mode="d2l", token="word", max_tokens=100).train.shape == (100,)
    with pytest.raises(UsageError, match="prepared with --mode d2l --token word; pass those"):
        prepare_text(corpus, mode="raw", token="char")
    with pytest.raises(UsageError, match="prepared with --split 0.9,0.05,0.05, not d2l"):
        prepare_text(corpus, mode="d2l", token="word", split="d2l")
    other = prepare_text(load_corpus(str(source)), mode="d2l", token="word", min_freq=3).vocab
    with pytest.raises(DataError, match="another vocabulary"):
        prepare_text(corpus, mode="d2l", token="word", vocab=other)
    assert np.array_equal(prepare_text(corpus, mode="d2l", token="word", vocab=ref.vocab).val, ref.val)
    with pytest.raises(UsageError, match="drop --val/--test"):
        load_corpus(str(out), val=str(source))


@pytest.mark.parametrize("sampling", ["random", "sequential"])
def test_same_batches_from_the_memmap_as_in_memory(tmp_path, sampling):
    source = write(tmp_path / "text.txt", sample_text(30_000))
    prep.prepare_corpus(source, tmp_path / "out", chunk_bytes=4096)
    mapped = prepare_text(load_corpus(str(tmp_path / "out")))
    ref = prepare_text(load_corpus(str(source)))
    for world_size in (1, 2):
        for rank in range(world_size):
            a = BatchIterator(mapped.train, 8, 16, sampling, seed=3, epoch=1, rank=rank, world_size=world_size)
            b = BatchIterator(ref.train, 8, 16, sampling, seed=3, epoch=1, rank=rank, world_size=world_size)
            pairs = list(zip(a, b))
            assert len(pairs) == len(list(BatchIterator(ref.train, 8, 16, sampling, seed=3, epoch=1)))
            assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in pairs)


def test_ngram_counts_in_chunks_equal_counts_in_memory(tmp_path):
    from rnnlab.ngram.counts import count_ngrams, count_ngrams_chunked
    from rnnlab.ngram.model import NGramLM

    ids = np.random.default_rng(0).zipf(1.5, 20_000) % 50
    for order in (1, 2, 4):
        whole = count_ngrams(ids, order, 50)
        for chunk in (7, 1000, 10**6):
            parts = count_ngrams_chunked(ids.astype(np.uint8), order, 50, chunk_tokens=chunk)
            assert all(np.array_equal(a, b) for a, b in zip(whole.keys, parts.keys))
            assert all(np.array_equal(a, b) for a, b in zip(whole.counts, parts.counts))
    path = tmp_path / "ids.bin"
    ids.astype(np.uint8).tofile(path)
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    held_out = ids[:3000]
    a = NGramLM(3, "kn").fit(mapped, 50)
    b = NGramLM(3, "kn").fit(ids, 50)
    assert a.evaluate(held_out)["perplexity"] == pytest.approx(b.evaluate(held_out)["perplexity"], rel=1e-12)


# ----------------------------------------------------------------------------------
# memory: a few hundred MB prepared and iterated in a child process (peak RSS: VmHWM)

RSS_SCRIPT = r"""
import json, os, resource, sys, time
import numpy as np
from rnnlab.data.batches import BatchIterator
from rnnlab.data.prepare import open_prepared, prepare_corpus

def status_mb(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key + ":")) / 1024

def rss_anon_mb():  # resident memory that is not a mapped file
    return status_mb("RssAnon")

def peak_mb():
    # VmHWM, the peak RSS of this process's own memory. Not ru_maxrss: Linux carries the
    # high-water mark of the memory replaced by exec() into it, so a child started by a
    # big parent (pytest after other tests) reports the parent's peak there.
    return status_mb("VmHWM")

source, out, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
# Generate: random lines of 400 distinct words (a realistic character set), written in blocks.
rng = np.random.default_rng(0)
words = np.array(["".join(rng.choice(list("etaoinshrdlucmfwypvbgkqjxz"), rng.integers(1, 11))) for _ in range(400)])
blocks = [(" ".join(words[rng.integers(0, 400, 900)]) + ".\n").encode() for _ in range(64)]
with open(source, "wb") as f:
    written = 0
    while written < size:
        for i in rng.integers(0, 64, 256):
            f.write(blocks[i]); written += len(blocks[i])
base = peak_mb()
t = time.perf_counter()
summary = prepare_corpus(source, out)
prepare_s = time.perf_counter() - t
prepare_peak = peak_mb()
data = open_prepared(out)
anon_peak, batches = rss_anon_mb(), 0
t = time.perf_counter()
for sampling in ("random", "sequential"):
    loader = BatchIterator(data.train, 256, 64, sampling, seed=0)
    for i, (X, Y) in enumerate(loader):
        batches += 1
        if i % 500 == 0:
            anon_peak = max(anon_peak, rss_anon_mb())
anon_peak = max(anon_peak, rss_anon_mb())
print(json.dumps({"input_mb": written / 1e6, "train_tokens": len(data.train), "import_rss_mb": base,
                  "prepare_peak_rss_mb": prepare_peak, "prepare_s": prepare_s, "mb_per_s": summary["mb_per_s"],
                  "iterate_anon_peak_mb": anon_peak, "iterate_s": time.perf_counter() - t, "batches": batches,
                  "final_peak_rss_mb": peak_mb(),
                  "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

# The bound: importing rnnlab (torch) takes ~220 MB; preparing adds the temporaries of one
# 4 MiB chunk (decoded text, UTF-32 code points, int64 indices for bincount and the id
# lookup: ~110 MB at most) and iterating adds the epoch permutation (4 bytes per
# subsequence, ~15 MB here) and one batch. 400 MB leaves room for allocator slack; a
# whole-corpus load of the 250 MB text (str + UTF-32 code points: > 1 GB) cannot pass it.
RSS_BOUND_MB = 400
TEXT_BYTES = 250_000_000


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RssAnon from /proc (Linux)")
def test_a_large_corpus_is_prepared_and_iterated_in_bounded_memory(tmp_path):
    proc = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(tmp_path / "big.txt"), str(tmp_path / "out"),
                           str(TEXT_BYTES)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    print(result)
    assert result["input_mb"] >= 250 and result["train_tokens"] > 0.89 * TEXT_BYTES
    assert result["prepare_peak_rss_mb"] < RSS_BOUND_MB, result
    # Iterating: anonymous memory is bounded; the shard's pages the iterators touched are
    # page cache mapped into the process (in the peak RSS, dropped by the kernel under
    # pressure), at most the shard's size (uint8: one byte per token).
    assert result["iterate_anon_peak_mb"] < RSS_BOUND_MB, result
    assert result["final_peak_rss_mb"] < RSS_BOUND_MB + result["train_tokens"] / 2**20, result
    assert result["batches"] >= 2 * (0.89 * TEXT_BYTES // (256 * 64) - 1)  # a whole epoch of each sampler


def test_unigram_baseline_in_steps_equals_whole(monkeypatch):
    """The add-one unigram reference reads a memory-mapped train split in steps."""
    from rnnlab import evaluation

    rng = np.random.default_rng(0)
    train, val = rng.integers(0, 40, 50_000).astype(np.uint8), rng.integers(0, 45, 3000).astype(np.uint8)
    whole = evaluation.unigram_result(train, val, 45)
    monkeypatch.setattr(evaluation, "_CHUNK", 999)
    steps = evaluation.unigram_result(train, val, 45)
    assert steps["perplexity"] == pytest.approx(whole["perplexity"], rel=1e-12)
    assert steps["unknown_tokens"] == whole["unknown_tokens"] > 0
