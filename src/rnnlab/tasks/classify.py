"""Many-to-one: sequence classification as a task for :mod:`rnnlab.tasks.loop`.

Texts are split into whitespace-separated word tokens (lowercased by default) or
into characters (``tokens="char"``); labels are strings, indexed in sorted order.
Batches are dicts: ``tokens (batch, steps)`` int64, ``lengths (batch,)``,
``labels (batch,)``, ``indices`` (positions in the example list), ``size``.
The metric the loop maximises is validation accuracy (or ``macro_f1``).
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import torch
import torch.nn.functional as F

import numpy as np

from rnnlab.checkpoint import config_error, config_value, is_number
from rnnlab.data.labelled import FeatureSequence, LabelledText
from rnnlab.errors import DataError, UsageError
from rnnlab.models.base import memory_guard
from rnnlab.model_checkpoint import checked_options
from rnnlab.tasks.base import Index, bucketed_batches, check_size, distinct_strings, pad
from rnnlab.tasks.metrics import classification_report
from rnnlab.tasks.models import CLASSIFIER_OPTIONS, SequenceClassifier

TOKENIZATIONS = ("word", "char")
METRICS = ("accuracy", "macro_f1")


def _is_bool(value) -> bool:
    return isinstance(value, bool)


class ClassificationTask:
    kind = "classifier"
    network_options = CLASSIFIER_OPTIONS  # the network's options and their ranges

    def __init__(self, vocab: Index, labels: Sequence[str], tokens: str = "word", lowercase: bool = True,
                 metric: str = "accuracy") -> None:
        if tokens not in TOKENIZATIONS:
            raise UsageError(f"unknown tokenization '{tokens}'; choose one of {', '.join(TOKENIZATIONS)}")
        if metric not in METRICS:
            raise UsageError(f"unknown metric '{metric}'; choose accuracy or macro_f1")
        self.vocab, self.labels = vocab, list(labels)
        self.label_index = {label: i for i, label in enumerate(self.labels)}
        self.tokens, self.lowercase = tokens, lowercase
        self.metric = (metric, "max")

    # ------------------------------------------------------------------------------
    # building and saving

    @classmethod
    def from_examples(cls, examples: Sequence[LabelledText], tokens: str = "word", lowercase: bool = True,
                      min_count: int = 1, max_vocab: int | None = 50_000, metric: str = "accuracy"):
        task = cls(Index([]), [], tokens, lowercase, metric)
        counts = Counter(token for example in examples for token in task.tokenize(example.text))
        labels = sorted({example.label for example in examples})
        if len(labels) < 2:
            raise DataError(f"the training data has {len(labels)} label ({labels[0]!r}); a classifier needs "
                            "at least two")
        return cls(Index.from_counts(counts, min_count, max_vocab), labels, tokens, lowercase, metric)

    def state(self) -> dict:
        return {"vocab": self.vocab.tokens, "labels": self.labels, "tokens": self.tokens,
                "lowercase": self.lowercase, "metric": self.metric[0]}

    @classmethod
    def from_state(cls, state: dict) -> "ClassificationTask":
        return cls(Index(state["vocab"]), state["labels"], state["tokens"], state["lowercase"], state["metric"])

    @classmethod
    def from_config(cls, folder, config: dict) -> tuple["ClassificationTask", dict]:
        """(the task, the network's options) of a classifier checkpoint's ``config.json``,
        every value checked first (:class:`~rnnlab.errors.CheckpointError` naming the key)."""
        vocab = distinct_strings(folder, config, "task.vocab", "token", index=True)
        labels = distinct_strings(folder, config, "task.labels", "label", minimum=2)
        config_value(config, "task.tokens", folder, lambda v: v in TOKENIZATIONS, f"one of {', '.join(TOKENIZATIONS)}")
        config_value(config, "task.lowercase", folder, _is_bool, "true or false")
        config_value(config, "task.metric", folder, lambda v: v in METRICS, f"one of {', '.join(METRICS)}")
        options = checked_options(folder, config, CLASSIFIER_OPTIONS, required=True, what="classifier")
        check_size(folder, options, "vocab_size", len(vocab), "task.vocab")
        check_size(folder, options, "num_classes", len(labels), "task.labels")
        if options["input_size"]:
            raise config_error(folder, "model.input_size", f"is {options['input_size']}, but a classifier of texts "
                               "reads token indices (0)")
        return cls.from_state(config["task"]), options

    def build_model(self, seed: int | None = None, **options) -> SequenceClassifier:
        options = {key: value for key, value in options.items() if key not in ("vocab_size", "num_classes")}
        with torch.random.fork_rng(devices=[]), memory_guard("the classifier"):
            if seed is not None:
                torch.manual_seed(seed)
            return SequenceClassifier(len(self.vocab), len(self.labels), **options)

    # ------------------------------------------------------------------------------
    # data

    def tokenize(self, text: str) -> list[str]:
        text = text.lower() if self.lowercase else text
        return text.split() if self.tokens == "word" else list(text)

    def check_labels(self, examples: Sequence[LabelledText], source: str = "") -> None:
        """Refuse a label the model was not trained on (it could never be predicted)."""
        for example in examples:
            if example.label not in self.label_index:
                raise DataError(f"{source + ': ' if source else ''}line {example.line}: label {example.label!r} "
                                f"was never seen in training (labels: {', '.join(map(repr, self.labels))})")

    def batches(self, examples: Sequence[LabelledText], batch_size: int, generator: torch.Generator | None = None):
        encoded = [self.vocab.encode(self.tokenize(example.text)) or [1] for example in examples]
        for indices in bucketed_batches([len(row) for row in encoded], batch_size, generator):
            rows = [encoded[i] for i in indices]
            yield {"tokens": pad(rows), "lengths": torch.tensor([len(row) for row in rows]),
                   "labels": torch.tensor([self.label_index.get(examples[i].label, -1) for i in indices]),
                   "indices": indices, "size": len(indices)}

    # ------------------------------------------------------------------------------
    # training and scoring

    def loss(self, model: SequenceClassifier, batch: dict) -> torch.Tensor:
        device = next(model.parameters()).device
        logits = model(batch["tokens"].to(device), batch["lengths"])
        return F.cross_entropy(logits.float(), batch["labels"].to(device))

    @torch.no_grad()
    def probabilities(self, model: SequenceClassifier, examples: Sequence[LabelledText],
                      batch_size: int = 64) -> torch.Tensor:
        """(examples, classes) class probabilities, in the order of ``examples``."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        out = torch.zeros(len(examples), len(self.labels))
        for batch in self.batches(examples, batch_size):
            logits = model(batch["tokens"].to(device), batch["lengths"])
            out[batch["indices"]] = logits.float().softmax(-1).cpu()
        model.train(was_training)
        return out

    def predict(self, model: SequenceClassifier, texts: Sequence[str], batch_size: int = 64) -> list[dict]:
        """For each text: ``{"text", "label", "probabilities": {label: p}}``."""
        examples = [LabelledText(text, "", i + 1) for i, text in enumerate(texts)]
        probabilities = self.probabilities(model, examples, batch_size)
        return [{"text": text, "label": self.labels[int(row.argmax())],
                 "probabilities": {label: float(p) for label, p in zip(self.labels, row)}}
                for text, row in zip(texts, probabilities)]

    def evaluate(self, model: SequenceClassifier, examples: Sequence[LabelledText], batch_size: int = 64) -> dict:
        """:func:`classification_report` plus ``loss``, the mean cross-entropy (nats) of the gold labels."""
        self.check_labels(examples)
        probabilities = self.probabilities(model, examples, batch_size)
        predicted = probabilities.argmax(-1).tolist()
        report = classification_report([example.label for example in examples],
                                       [self.labels[i] for i in predicted], self.labels)
        gold = torch.tensor([self.label_index[example.label] for example in examples])
        report["loss"] = -probabilities[torch.arange(len(examples)), gold].clamp_min(1e-12).log().mean().item()
        return report


class FeatureClassificationTask(ClassificationTask):
    """Classification of numeric sequences (:class:`~rnnlab.data.labelled.FeatureSequence`:
    speech frames, sensor readings). Features are standardised with the training data's
    mean and standard deviation per feature; batches hold ``tokens (batch, steps, F)``
    float32 instead of token indices, and the classifier feeds them straight to its RNN."""

    def __init__(self, labels: Sequence[str], mean: Sequence[float], std: Sequence[float],
                 metric: str = "accuracy") -> None:
        super().__init__(Index(["<pad>"]), labels, metric=metric)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    @classmethod
    def from_examples(cls, examples: Sequence[FeatureSequence], metric: str = "accuracy", **_):
        labels = sorted({example.label for example in examples})
        if len(labels) < 2:
            raise DataError(f"the training data has {len(labels)} label; a classifier needs at least two")
        frames = np.concatenate([example.features for example in examples])
        return cls(labels, frames.mean(0), np.maximum(frames.std(0), 1e-6), metric)

    def state(self) -> dict:
        return {"labels": self.labels, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "metric": self.metric[0]}

    @classmethod
    def from_state(cls, state: dict) -> "FeatureClassificationTask":
        return cls(state["labels"], state["mean"], state["std"], state["metric"])

    @classmethod
    def from_config(cls, folder, config: dict) -> tuple["FeatureClassificationTask", dict]:
        labels = distinct_strings(folder, config, "task.labels", "label", minimum=2)
        mean = config_value(config, "task.mean", folder, lambda v: isinstance(v, list) and len(v) > 0
                            and all(map(is_number(-3.4e38, 3.4e38), v)), "a non-empty list of finite numbers")
        config_value(config, "task.std", folder, lambda v: isinstance(v, list) and len(v) == len(mean)
                     and all(is_number(1e-12, 3.4e38)(x) for x in v),
                     f"a list of {len(mean)} positive numbers (one per feature)")
        config_value(config, "task.metric", folder, lambda v: v in METRICS, f"one of {', '.join(METRICS)}")
        options = checked_options(folder, config, CLASSIFIER_OPTIONS, required=True, what="classifier")
        check_size(folder, options, "num_classes", len(labels), "task.labels")
        check_size(folder, options, "input_size", len(mean), "task.mean")
        return cls.from_state(config["task"]), options

    def build_model(self, seed: int | None = None, **options) -> SequenceClassifier:
        options = {key: value for key, value in options.items() if key not in ("input_size", "vocab_size")}
        return super().build_model(seed=seed, input_size=len(self.mean), **options)

    def batches(self, examples: Sequence[FeatureSequence], batch_size: int, generator: torch.Generator | None = None):
        for indices in bucketed_batches([len(example.features) for example in examples], batch_size, generator):
            lengths = [len(examples[i].features) for i in indices]
            frames = np.zeros((len(indices), max(lengths), len(self.mean)), dtype=np.float32)
            for row, i in enumerate(indices):
                if examples[i].features.shape[1:] != self.mean.shape:
                    raise DataError(f"line {examples[i].line}: {examples[i].features.shape[1]} features, the "
                                    f"model was trained on {len(self.mean)}")
                frames[row, :lengths[row]] = (examples[i].features - self.mean) / self.std
            yield {"tokens": torch.from_numpy(frames), "lengths": torch.tensor(lengths),
                   "labels": torch.tensor([self.label_index.get(examples[i].label, -1) for i in indices]),
                   "indices": indices, "size": len(indices)}

    def predict(self, model: SequenceClassifier, sequences: Sequence[FeatureSequence],
                batch_size: int = 64) -> list[dict]:
        """For each sequence: ``{"id", "label", "probabilities": {label: p}}``."""
        probabilities = self.probabilities(model, sequences, batch_size)
        return [{"id": sequence.id, "label": self.labels[int(row.argmax())],
                 "probabilities": {label: float(p) for label, p in zip(self.labels, row)}}
                for sequence, row in zip(sequences, probabilities)]


__all__ = ["ClassificationTask", "FeatureClassificationTask", "TOKENIZATIONS"]
