"""The explorer of classifier and tagger folders, and which explorer a folder gets.

:func:`open_explorer` reads the kind recorded in a folder's ``config.json`` and loads it
with the loader its own command uses: a language-model run (``rnnlab train``) gets
:class:`~rnnlab.explore.session.Explorer`; a classifier (``rnnlab classify train``)
:class:`ClassifierExplorer`, loaded as ``rnnlab classify predict`` loads it
(:func:`rnnlab.tasks.base.load_task`, the ``best/`` weights when there are some); a
tagger (``rnnlab tag train``) :class:`TaggerExplorer`, as ``rnnlab tag predict`` does.
Anything else is refused.

Each task explorer answers ``GET /api/info``, ``GET /api/training`` (the run's
``metrics.jsonl``: the validation metric and the losses per epoch) and one POST route with the same checks,
limits (:class:`~rnnlab.explore.session.Limits`: ``text_chars``) and error classes as
the language-model routes:

* ``POST /api/classify`` ``{"text": str}``: the label probabilities of the text, sorted
  from the most probable, and the predicted label (the numbers of ``classify predict``);
* ``POST /api/tag`` ``{"text": str}``: one tag per whitespace-separated token (those of
  ``tag predict``) and the entity spans they make (:func:`entity_spans`).
"""
from __future__ import annotations

import threading
from dataclasses import asdict
from pathlib import Path

from rnnlab.checkpoint import load_config
from rnnlab.data.labelled import split_tag
from rnnlab.errors import CheckpointError, DataError, UsageError
from rnnlab.explore import analysis
from rnnlab.explore.session import Explorer, FairLock, Limits, parameters, string_parameter
from rnnlab.tasks.base import load_task
from rnnlab.tasks.classify import ClassificationTask
from rnnlab.tasks.metrics import entities
from rnnlab.tasks.tag import TaggingTask

LANGUAGE_MODEL, CLASSIFIER, TAGGER = "language-model", "classifier", "tagger"
KINDS = (LANGUAGE_MODEL, CLASSIFIER, TAGGER)
ENTITY_PREFIXES = ("B", "I", "E", "S")


def folder_kind(folder) -> str:
    """The kind of model ``folder`` holds (one of :data:`KINDS`), from its ``config.json``;
    a :class:`~rnnlab.errors.CheckpointError` for a folder that is not a checkpoint or
    holds another kind (an n-gram model, a forecaster, a chapter reproduction)."""

    kind = load_config(folder).get("kind")
    if kind not in KINDS:
        raise CheckpointError(f"{folder} holds a '{kind}' model, not a 'language-model' model nor a 'classifier' or "
                              "'tagger' one: rnnlab explore serves those three kinds")
    return kind


def open_explorer(folder, ngram_folder=None, data_dir=None, corpus=None, limits: Limits | None = None):
    """The explorer of ``folder``'s kind (see the module docstring).

    ``ngram_folder``, ``data_dir`` and ``corpus`` are the language-model explorer's
    (the comparison n-gram model, where the training corpus is); for a classifier or a
    tagger they are a :class:`~rnnlab.errors.UsageError` naming the option."""
    kind = folder_kind(folder)
    if kind == LANGUAGE_MODEL:
        return Explorer(folder, ngram_folder=ngram_folder, limits=limits, data_dir=data_dir, corpus=corpus)
    for flag, value in (("--ngram", ngram_folder), ("--data-dir", data_dir), ("--corpus", corpus)):
        if value is not None:
            raise UsageError(f"{flag} applies to language-model folders only; {folder} holds a {kind}")
    return (ClassifierExplorer if kind == CLASSIFIER else TaggerExplorer)(folder, limits=limits)


def entity_spans(tags) -> list[dict]:
    """The entities of one tagged sentence: ``[{"type", "start", "end"}]``, token positions
    with ``end`` inclusive, in order, none overlapping.

    Chunks follow ``conlleval`` (:func:`rnnlab.tasks.metrics.entities`, the counting of
    ``tag eval``): in IOB2 ``B-X`` starts an entity and ``I-X`` continues one of type
    ``X``; an ``I-X`` after ``O`` or after another type starts one too; IOBES's ``E-`` and
    ``S-`` close one."""

    return [{"type": kind, "start": start, "end": end} for kind, start, end in entities(list(tags))]


class TaskExplorer:
    """What the classifier and tagger explorers share: the folder loaded once with
    :func:`rnnlab.tasks.base.load_task`, a lock around the model (requests run on threads),
    the limits, the API routes it answers (``routes``) and the ``stopping`` flag the server
    sets when it stops."""

    kind = ""
    task_class = None
    route = ""

    def __init__(self, folder, limits: Limits | None = None) -> None:

        self.folder = Path(folder)
        self.limits = limits or Limits()
        self.task, self.model, self.config = load_task(folder, self.task_class)
        self.lock = FairLock()
        self.stopping = threading.Event()
        self.routes = frozenset({"/api/info", "/api/training", self.route})
        self.run_config = load_config(self.folder, kind=self.kind)  # the run's (not best/'s): its progress
        self.metrics_path = analysis.metrics_file(self.folder)

    def info(self) -> dict:
        return {"kind": self.kind, "folder": str(self.folder), "model": self.config.get("model", {}),
                "parameters": sum(p.numel() for p in self.model.parameters()), "limits": asdict(self.limits)}

    def training(self) -> dict:
        """The Training panel's records: the task's validation metric, and the training and
        validation losses (mean nats per example; ``train_`` keys where the run had no
        validation examples and was scored on its training examples)."""
        metric = self.task.metric[0]
        data = self.run_config.get("data")
        split = "val" if isinstance(data, dict) and data.get("val_examples") else "train"
        where = "validation" if split == "val" else "training"
        charts = [{"title": f"{metric.replace('_', ' ')} ({where})", "log": False,
                   "series": [[f"{split}_{metric}", f"{where} {metric.replace('_', ' ')}"]]},
                  {"title": "Loss (nats per example)", "log": False,
                   "series": [["train_loss", "training loss"],
                              ["val_loss", "validation loss"] if split == "val" else
                              ["train_eval_loss", "training loss, evaluated"]]}]
        return analysis.training_report(self.metrics_path, self.run_config, self.limits.metrics_bytes, charts, None)

    def _text(self, body) -> str:
        body = parameters(body, {"text": None})
        return string_parameter(body["text"], "text", self.limits.text_chars)


class ClassifierExplorer(TaskExplorer):
    """A classifier folder of ``rnnlab classify train`` (texts, not numeric sequences)."""

    kind = CLASSIFIER
    route = "/api/classify"

    def __init__(self, folder, limits: Limits | None = None) -> None:

        # The test of rnnlab classify predict: a classifier of numeric sequences keeps the features' mean.
        if "mean" in load_config(folder, kind=CLASSIFIER).get("task", {}):
            raise DataError(f"{folder} classifies numeric sequences (classify train --frames), not texts: the explore "
                            "page has no panel for it; use rnnlab classify predict --data FILE")
        self.task_class = ClassificationTask
        super().__init__(folder, limits)

    def info(self) -> dict:
        task = self.task
        return {**super().info(), "labels": task.labels, "tokens": task.tokens, "lowercase": task.lowercase,
                "vocab_size": len(task.vocab)}

    def classify(self, body) -> dict:
        """``text`` -> ``tokens`` (as the model reads them), ``unknown`` (per token: read as
        ``<unk>``), ``label`` (the prediction) and ``probabilities`` ``[{"label", "p"}]``
        sorted by ``p`` from the largest (ties in label order), summing to 1."""
        text = self._text(body)
        tokens = self.task.tokenize(text)
        if not tokens:
            raise UsageError(f"the text has no {self.task.tokens} tokens")
        with self.lock:
            prediction = self.task.predict(self.model, [text])[0]
        ranked = sorted(prediction["probabilities"].items(), key=lambda item: -item[1])  # stable: label order on ties
        lookup = self.task.vocab.lookup
        return {"tokens": tokens, "unknown": [token not in lookup for token in tokens], "label": prediction["label"],
                "probabilities": [{"label": label, "p": p} for label, p in ranked]}


class TaggerExplorer(TaskExplorer):
    """A tagger folder of ``rnnlab tag train``: named entities (B-/I-/E-/S- tags) or plain
    tags (parts of speech; then no spans)."""

    kind = TAGGER
    route = "/api/tag"

    def __init__(self, folder, limits: Limits | None = None) -> None:

        self.task_class = TaggingTask
        super().__init__(folder, limits)

        self.entity_types = sorted({split_tag(tag)[1] for tag in self.task.tags
                                    if split_tag(tag)[0] in ENTITY_PREFIXES})

    def info(self) -> dict:
        return {**super().info(), "tags": self.task.tags, "entity_types": self.entity_types,
                "lowercase": self.task.lowercase, "vocab_size": len(self.task.words)}

    def tag(self, body) -> dict:
        """``text`` -> ``tokens`` (split at whitespace, as ``tag predict`` splits a sentence),
        ``tags`` (one per token), ``unknown`` (per token: a word the vocabulary lacks, read by
        the character encoder alone) and ``spans`` (:func:`entity_spans`; none for a tagger
        without entity tags)."""
        tokens = self._text(body).split()
        if not tokens:
            raise UsageError("the text has no tokens (words separated by spaces)")
        with self.lock:
            pairs = self.task.predict(self.model, [tokens])[0]
        tags = [tag for _, tag in pairs]
        lookup, lowercase = self.task.words.lookup, self.task.lowercase
        return {"tokens": tokens, "tags": tags,
                "unknown": [(token.lower() if lowercase else token) not in lookup for token in tokens],
                "spans": entity_spans(tags) if self.entity_types else []}


__all__ = ["ClassifierExplorer", "TaggerExplorer", "KINDS", "entity_spans", "folder_kind", "open_explorer"]
