"""rnnlab explore on classifier and tagger folders: the folder kinds, /api/classify and /api/tag
against `classify predict` and `tag predict`, their refusals, and the entity spans.

A tiny classifier and a tiny tagger are trained once for the module by their own commands
(on rnnlab.tasks.synthetic data, a few seconds); servers run in-process on a free port.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.errors import CheckpointError, DataError, UsageError
from rnnlab.explore import ClassifierExplorer, Explorer, Limits, TaggerExplorer, entity_spans, open_explorer
from test_explore import ExploreProcess, request, running

CLASSIFY = ["--epochs", "4", "--batch-size", "8", "--lr", "2e-2", "--hidden-size", "12", "--embed-size", "8",
            "--cell", "gru", "--seed", "0"]
TAG = ["--epochs", "6", "--batch-size", "8", "--lr", "2e-2", "--hidden-size", "16", "--embed-size", "12",
       "--char-size", "6", "--dropout", "0.2", "--seed", "0"]


def train_task_folders(root: Path) -> tuple[Path, Path]:
    """(classifier, tagger) folders of ``rnnlab classify train`` and ``rnnlab tag train`` under
    ``root``: small enough to train in a few seconds, good enough to show what they learnt."""
    from rnnlab.cli import main
    from rnnlab.tasks.synthetic import ambiguous_entities, distant_cue_texts, write_conll, write_csv

    write_csv(distant_cue_texts(200, seed=0), root / "train.csv")
    write_csv(distant_cue_texts(40, seed=1), root / "val.csv")
    write_conll(ambiguous_entities(200, seed=0), root / "train.conll")
    write_conll(ambiguous_entities(40, seed=1), root / "dev.conll")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["-q", "classify", "train", "--data", str(root / "train.csv"), "--val", str(root / "val.csv"),
                     "--out", str(root / "clf"), *CLASSIFY]) == 0
        assert main(["-q", "tag", "train", "--data", str(root / "train.conll"), "--val", str(root / "dev.conll"),
                     "--out", str(root / "ner"), *TAG]) == 0
    return root / "clf", root / "ner"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return train_task_folders(tmp_path_factory.mktemp("explore-panels"))


@pytest.fixture(scope="module")
def classifier(folders):
    with running(open_explorer(folders[0], limits=Limits(read_seconds=2.0, socket_timeout=2.0))) as server:
        yield server


@pytest.fixture(scope="module")
def tagger(folders):
    with running(open_explorer(folders[1], limits=Limits(read_seconds=2.0, socket_timeout=2.0))) as server:
        yield server


def cli_json(argv: list[str], capsys) -> dict:
    from rnnlab.cli import main

    capsys.readouterr()
    assert main(["-q", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# ---- which explorer a folder gets --------------------------------------------------------------
def test_each_kind_gets_its_explorer_and_others_are_refused(folders, tmp_path):
    from rnnlab.checkpoint import save_checkpoint

    assert type(open_explorer(folders[0])) is ClassifierExplorer
    assert type(open_explorer(folders[1])) is TaggerExplorer
    save_checkpoint(tmp_path / "fc", {}, {}, kind="forecaster")
    with pytest.raises(CheckpointError, match="holds a 'forecaster' model, not a 'language-model' model nor a "
                                              "'classifier' or 'tagger' one"):
        open_explorer(tmp_path / "fc")
    with pytest.raises(CheckpointError, match="not an rnnlab checkpoint"):
        open_explorer(tmp_path)
    for option, value in (("ngram_folder", "ng"), ("data_dir", "."), ("corpus", "fox.txt")):
        flag = {"ngram_folder": "--ngram", "data_dir": "--data-dir", "corpus": "--corpus"}[option]
        with pytest.raises(UsageError, match=f"{flag} applies to language-model folders only; .* holds a tagger"):
            open_explorer(folders[1], **{option: value})
    assert "/api/classify" not in Explorer.routes and "/api/tag" not in Explorer.routes


def test_a_classifier_of_numeric_sequences_is_refused(tmp_path):
    from rnnlab.tasks.base import save_task
    from rnnlab.tasks.classify import FeatureClassificationTask

    task = FeatureClassificationTask(["high", "low"], [0.0, 0.0], [1.0, 1.0])
    save_task(tmp_path / "tones", task, task.build_model(seed=0, hidden_size=4))
    with pytest.raises(DataError, match=r"classifies numeric sequences \(classify train --frames\)"):
        open_explorer(tmp_path / "tones")


# ---- the classifier panel ----------------------------------------------------------------------
TEXTS = ["excellent river day cat sleeps under the tree", "dreadful " + "house blue " * 8,
         "Zebra quagga the the", "tree excellent dreadful"]


def test_classify_gives_the_probabilities_of_classify_predict(classifier, folders, capsys):
    status, info, _ = request(classifier, "GET", "/api/info")
    assert status == 200 and info["kind"] == "classifier" and info["labels"] == ["neg", "pos"]
    assert info["tokens"] == "word" and info["parameters"] > 0 and info["limits"]["text_chars"] == 20_000
    for text in TEXTS:
        status, data, _ = request(classifier, "POST", "/api/classify", {"text": text})
        assert status == 200, data
        expected = cli_json(["classify", "predict", str(folders[0]), text], capsys)["predictions"][0]
        got = {entry["label"]: entry["p"] for entry in data["probabilities"]}
        assert got == expected["probabilities"] and data["label"] == expected["label"]
        assert sum(got.values()) == pytest.approx(1.0, abs=1e-6)
        ps = [entry["p"] for entry in data["probabilities"]]
        assert ps == sorted(ps, reverse=True) and data["probabilities"][0]["label"] == data["label"]
        assert data["tokens"] == text.lower().split()
    _, data, _ = request(classifier, "POST", "/api/classify", {"text": "Zebra quagga the the"})
    assert data["unknown"] == [True, True, False, False]  # the training texts have no zebra or quagga
    _, cue, _ = request(classifier, "POST", "/api/classify", {"text": TEXTS[1]})
    assert cue["label"] == "neg" and cue["probabilities"][0]["p"] > 0.5  # the model learnt the first word's cue


# ---- the tagger panel --------------------------------------------------------------------------
SENTENCES = ["ben kim ate an apple in lima", "anna chen joined apple last year", "Grace  Rossi visited new york",
             "xyzzy plugh"]


def test_tag_gives_the_tags_of_tag_predict_and_their_spans(tagger, folders, capsys):
    status, info, _ = request(tagger, "GET", "/api/info")
    assert status == 200 and info["kind"] == "tagger" and info["entity_types"] == ["LOC", "ORG", "PER"]
    assert set(info["tags"]) == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"}
    for sentence in SENTENCES:
        status, data, _ = request(tagger, "POST", "/api/tag", {"text": sentence})
        assert status == 200, data
        pairs = cli_json(["tag", "predict", str(folders[1]), sentence], capsys)["predictions"][0]
        assert data["tokens"] == [token for token, _ in pairs] == sentence.split()
        assert data["tags"] == [tag for _, tag in pairs]
        assert data["spans"] == entity_spans(data["tags"]) == reference_iob2_spans(data["tags"])
    _, data, _ = request(tagger, "POST", "/api/tag", {"text": "ben kim ate an apple in lima"})
    assert data["tags"] == ["B-PER", "I-PER", "O", "O", "O", "O", "B-LOC"]  # what it learnt
    assert data["spans"] == [{"type": "PER", "start": 0, "end": 1}, {"type": "LOC", "start": 6, "end": 6}]
    _, data, _ = request(tagger, "POST", "/api/tag", {"text": "xyzzy Ben"})
    assert data["unknown"] == [True, False]  # looked up lowercased, as the tagger reads words


def test_a_character_classifier_and_a_tagger_without_entity_tags(tmp_path, capsys):
    """Models built in memory and saved: characters as tokens (spaces among them); tags
    without B-/I- prefixes (parts of speech) give no spans."""
    from rnnlab.tasks.base import PAD, UNK, Index, save_task
    from rnnlab.tasks.classify import ClassificationTask
    from rnnlab.tasks.tag import TaggingTask

    chars = ClassificationTask(Index([PAD, UNK, "a", "b", " "]), ["x", "y", "z"], tokens="char", lowercase=False)
    save_task(tmp_path / "chars", chars, chars.build_model(seed=0, embed_size=4, hidden_size=4))
    data = open_explorer(tmp_path / "chars").classify({"text": "ab cA"})
    assert data["tokens"] == list("ab cA") and data["unknown"] == [False, False, False, True, True]
    expected = cli_json(["classify", "predict", str(tmp_path / "chars"), "ab cA"], capsys)["predictions"][0]
    assert {e["label"]: e["p"] for e in data["probabilities"]} == expected["probabilities"]
    assert len(data["probabilities"]) == 3 and data["label"] == expected["label"]
    pos = TaggingTask(Index([PAD, UNK, "the", "dog"]), Index([PAD, UNK, "t", "h", "e"]), ["DET", "NN", "VB"])
    save_task(tmp_path / "pos", pos, pos.build_model(seed=0, embed_size=4, hidden_size=4, char_embed_size=2,
                                                     char_hidden_size=2))
    explorer = open_explorer(tmp_path / "pos")
    assert explorer.info()["entity_types"] == []
    data = explorer.tag({"text": "The dog barks"})
    assert data["spans"] == [] and set(data["tags"]) <= {"DET", "NN", "VB"} and data["unknown"] == [False, False, True]
    pairs = cli_json(["tag", "predict", str(tmp_path / "pos"), "The dog barks"], capsys)["predictions"][0]
    assert data["tags"] == [tag for _, tag in pairs]


# ---- entity spans --------------------------------------------------------------------------------
def test_entity_spans_of_iob2_and_iobes():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-PER", "B-ORG", "B-ORG", "O", "I-ORG"]
    assert entity_spans(tags) == [
        {"type": "PER", "start": 0, "end": 1},
        {"type": "LOC", "start": 3, "end": 4},  # an I- after O starts an entity
        {"type": "LOC", "start": 5, "end": 5},  # a B- starts a new one even after the same type
        {"type": "PER", "start": 6, "end": 6},  # an I- of another type starts one
        {"type": "ORG", "start": 7, "end": 7}, {"type": "ORG", "start": 8, "end": 8},
        {"type": "ORG", "start": 10, "end": 10}]  # at the end of the sentence
    assert entity_spans(["S-PER", "B-LOC", "I-LOC", "E-LOC", "B-ORG", "E-ORG", "E-ORG"]) == [
        {"type": "PER", "start": 0, "end": 0}, {"type": "LOC", "start": 1, "end": 3},
        {"type": "ORG", "start": 4, "end": 5}, {"type": "ORG", "start": 6, "end": 6}]
    assert entity_spans([]) == [] and entity_spans(["O", "O"]) == []


def reference_iob2_spans(tags) -> list[dict]:
    """IOB2 grouping written out: B-X opens an entity, I-X extends an open X entity or else
    opens one, O closes (the independent statement the property test compares with)."""
    spans: list[dict] = []
    open_type = None
    for position, tag in enumerate(tags):
        if tag == "O":
            open_type = None
            continue
        prefix, kind = tag.split("-", 1)
        if prefix == "I" and open_type == kind:
            spans[-1]["end"] = position
        else:
            spans.append({"type": kind, "start": position, "end": position})
            open_type = kind
    return spans


IOB2_TAGS = st.lists(st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC-X", "I-MISC-X"]),
                     max_size=40)


@settings(max_examples=300, deadline=None)
@given(IOB2_TAGS)
def test_entity_spans_group_iob2_tags(tags):
    spans = entity_spans(tags)
    assert spans == reference_iob2_spans(tags)
    covered = [p for span in spans for p in range(span["start"], span["end"] + 1)]
    assert covered == sorted(set(covered)) == [p for p, tag in enumerate(tags) if tag != "O"]  # ordered, disjoint
    for span in spans:
        inside = tags[span["start"]:span["end"] + 1]
        assert all(tag.split("-", 1)[1] == span["type"] for tag in inside)
        assert all(tag.startswith("I-") for tag in inside[1:])  # only the first token may be a B-
        before = tags[span["start"] - 1] if span["start"] else "O"
        assert inside[0].startswith("B-") or before == "O" or before.split("-", 1)[1] != span["type"]
    assert len(spans) == sum(tag.startswith("B-") for tag in tags) + sum(
        tag.startswith("I-") and (p == 0 or tags[p - 1] == "O" or tags[p - 1][2:] != tag[2:])
        for p, tag in enumerate(tags))


# ---- refusals ------------------------------------------------------------------------------------
BAD = [
    # (route, body, status, fragment)
    ("/api/classify", {}, 400, "text must be a string"),
    ("/api/classify", {"text": 12}, 400, "text must be a string, got int"),
    ("/api/classify", {"text": None}, 400, "text must be a string"),
    ("/api/classify", {"text": "x " * 10_001}, 400, "text is 20,002 characters; at most 20,000 are accepted"),
    ("/api/classify", {"text": "  \n "}, 400, "the text has no word tokens"),
    ("/api/classify", {"text": "a", "label": "pos"}, 400, "unknown parameter 'label'; this route takes: text"),
    ("/api/classify", {"text": "a", "path": "../config.json"}, 400, "unknown parameter 'path'"),
    ("/api/classify", ["text"], 400, "the request body must be a JSON object, got list"),
    ("/api/tag", {"text": ["ben", "kim"]}, 400, "text must be a string, got list"),
    ("/api/tag", {"text": "w " * 10_001}, 400, "at most 20,000 are accepted"),
    ("/api/tag", {"text": "\t "}, 400, "the text has no tokens"),
    ("/api/tag", {"tokens": ["ben"]}, 400, "unknown parameter 'tokens'"),
    ("/api/tag", "ben kim", 400, "must be a JSON object, got str"),
]


@pytest.mark.parametrize("route,body,status,fragment", BAD, ids=[f"{r[5:]}-{i}" for i, (r, *_) in enumerate(BAD)])
def test_bad_requests_are_json_4xx(classifier, tagger, route, body, status, fragment):
    server = classifier if route == "/api/classify" else tagger
    got, data, _ = request(server, "POST", route, body)
    assert got == status and data["status"] == status and fragment in data["error"], data


def test_routes_of_other_kinds_are_404_and_the_server_checks_still_hold(classifier, tagger):
    for server, kind, other in ((classifier, "classifier", "/api/tag"), (tagger, "tagger", "/api/classify")):
        for route in (other, "/api/surprisal", "/api/units", "/api/generate"):
            status, data, _ = request(server, "POST", route, {"text": "ben kim"})
            assert status == 404 and f"no route {route} for a {kind} folder" in data["error"], data
        status, page, _ = request(server, "GET", "/")
        assert status == 200 and 'id="panel-classify"' in page and 'id="panel-tag"' in page
        route = "/api/classify" if kind == "classifier" else "/api/tag"
        assert request(server, "GET", route)[0] == 405
        assert request(server, "POST", route, {"text": "ben"}, headers={"Host": "evil.example:80"})[0] == 403
        assert request(server, "POST", route, {"text": "ben"}, headers={"Origin": "http://evil.example"})[0] == 403
        assert request(server, "POST", route, raw_body=b"{bad json")[0] == 400
        assert request(server, "POST", route, raw_body=json.dumps({"text": "a" * 70_000}).encode())[0] == 413
        assert request(server, "POST", route, {"text": "ben"}, headers={"Content-Type": "text/plain"})[0] == 415


def test_training_gives_the_runs_records_and_the_tasks_charts(classifier, tagger, folders):
    for server, folder, metric in ((classifier, folders[0], "accuracy"), (tagger, folders[1], "entity_f1")):
        status, data, _ = request(server, "GET", "/api/training")
        lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        assert status == 200 and data["records"] == lines and len(lines) >= 4
        assert [[key for key, _ in chart["series"]] for chart in data["charts"]] == [
            [f"val_{metric}"], ["train_loss", "val_loss"]]
        assert all(key in lines[-1] for chart in data["charts"] for key, _ in chart["series"])
        assert data["baselines"] is None and data["stopped"] == "epochs" and data["metrics_file"]
        assert data["train_config"]["batch_size"] == 8 and data["data"]["val_examples"] == 40


def test_training_of_a_run_without_validation_examples(tmp_path):
    """Scored on its training examples: the metric and both training losses are drawn."""
    from rnnlab.cli import main
    from rnnlab.tasks.synthetic import distant_cue_texts, write_csv
    write_csv(distant_cue_texts(60, seed=2), tmp_path / "train.csv")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["-q", "classify", "train", "--data", str(tmp_path / "train.csv"), "--val-fraction", "0",
                     "--out", str(tmp_path / "clf"), "--epochs", "2", *CLASSIFY[2:]]) == 0
    with running(open_explorer(tmp_path / "clf")) as server:
        status, data, _ = request(server, "GET", "/api/training")
    assert status == 200 and [[key for key, _ in chart["series"]] for chart in data["charts"]] == [
        ["train_accuracy"], ["train_loss", "train_eval_loss"]]
    last = data["records"][-1]
    assert {"train_accuracy", "train_loss", "train_eval_loss"} <= set(last) and "val_loss" not in last
    assert last["train_loss"] != last["train_eval_loss"]  # the running loss and the evaluated one, both kept


# ---- the command ---------------------------------------------------------------------------------
def test_cli_serves_a_tagger_and_stops_on_ctrl_c(folders):
    with ExploreProcess(str(folders[1])) as served:
        assert f"serving {folders[1]} (tagger: bidirectional lstm, 6 tags, " in served.line
        assert served.host == "127.0.0.1"
        status, data = served.request("POST", "/api/tag", {"text": "ben kim"})
        assert status == 200 and data["tokens"] == ["ben", "kim"]
    assert served.returncode == 0 and "stopped" in served.stderr
    assert "Traceback" not in served.stderr and "warning" not in served.stderr
