"""Scores of classifiers and taggers.

Classification: accuracy, macro-F1 (the unweighted mean of the per-class F1),
per-class precision/recall/F1/support and the confusion matrix
(``matrix[gold][predicted]``, rows and columns in label order).

Tagging: entity-level precision/recall/F1, per type and overall, counted as the
CoNLL shared task's ``conlleval`` script counts them (and ``seqeval`` in its default
mode): an entity is a span with a type; a predicted entity counts only when its
start, end and type all match a gold one; the chunk boundaries follow conlleval's
rules, so an ``I-X`` after ``O`` (or after another type) starts an entity, and
``E-``/``S-`` tags (IOBES) close one. Plus per-token accuracy.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

from rnnlab.data.labelled import split_tag


def _prf(correct: int, predicted: int, gold: int) -> dict:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def classification_report(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class scores, the confusion matrix and the class balance."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, predicted):
        matrix[index[g]][index[p]] += 1
    per_class = {}
    for i, label in enumerate(labels):
        correct = matrix[i][i]
        support = sum(matrix[i])
        per_class[label] = {**_prf(correct, sum(row[i] for row in matrix), support), "support": support}
    total = len(gold)
    present = [label for label in labels if per_class[label]["support"] > 0]
    counts = Counter(gold)
    majority = max(counts.values()) / total if total else 0.0
    return {
        "examples": total,
        "accuracy": sum(matrix[i][i] for i in range(len(labels))) / total if total else 0.0,
        # macro over the classes present in the gold labels (a class absent from a test set has no recall)
        "macro_f1": sum(per_class[label]["f1"] for label in present) / len(present) if present else 0.0,
        "majority_accuracy": majority,  # what always answering the most frequent class scores: the imbalance
        "per_class": per_class,
        "labels": list(labels),
        "confusion": matrix,
    }


def _chunk_ends(prev_prefix: str, prefix: str, prev_type: str, kind: str) -> bool:
    """conlleval's endOfChunk: does the chunk that ``prev`` is in end before this token?"""
    if prev_prefix in ("E", "S"):
        return True
    if prev_prefix in ("B", "I") and prefix in ("B", "S", "O"):
        return True
    return prev_prefix != "O" and prev_type != kind


def _chunk_starts(prev_prefix: str, prefix: str, prev_type: str, kind: str) -> bool:
    """conlleval's startOfChunk: does a chunk start at this token?"""
    if prefix in ("B", "S"):
        return True
    if prev_prefix in ("E", "S", "O") and prefix in ("E", "I"):
        return True
    return prefix != "O" and prev_type != kind


def entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The entities of one sentence as ``(type, first, last)`` token positions (inclusive)."""
    found = []
    start = None
    prev_prefix, prev_type = "O", ""
    for position, tag in enumerate(list(tags) + ["O"]):  # the sentinel O closes an entity at the end
        prefix, kind = split_tag(tag)
        if start is not None and _chunk_ends(prev_prefix, prefix, prev_type, kind):
            found.append((prev_type, start, position - 1))
            start = None
        if _chunk_starts(prev_prefix, prefix, prev_type, kind):
            start = position
        prev_prefix, prev_type = prefix, kind
    return found


def tagging_report(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict:
    """Entity P/R/F1 overall (micro) and per type, and token accuracy, over sentences."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    correct, n_gold, n_predicted = Counter(), Counter(), Counter()
    tokens = right_tokens = 0
    for gold_tags, predicted_tags in zip(gold, predicted):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError("a predicted sentence differs in length from its gold sentence")
        gold_entities = set(entities(gold_tags))
        predicted_entities = set(entities(predicted_tags))
        for kind, _, _ in gold_entities:
            n_gold[kind] += 1
        for entity in predicted_entities:
            n_predicted[entity[0]] += 1
            if entity in gold_entities:
                correct[entity[0]] += 1
        tokens += len(gold_tags)
        right_tokens += sum(g == p for g, p in zip(gold_tags, predicted_tags))
    types = sorted(set(n_gold) | set(n_predicted))
    per_type = {kind: {**_prf(correct[kind], n_predicted[kind], n_gold[kind]), "support": n_gold[kind],
                       "predicted": n_predicted[kind]} for kind in types}
    overall = _prf(sum(correct.values()), sum(n_predicted.values()), sum(n_gold.values()))
    return {"sentences": len(gold), "tokens": tokens, "token_accuracy": right_tokens / tokens if tokens else 0.0,
            "entity_precision": overall["precision"], "entity_recall": overall["recall"],
            "entity_f1": overall["f1"], "entities": sum(n_gold.values()),
            "predicted_entities": sum(n_predicted.values()), "per_type": per_type}


__all__ = ["classification_report", "tagging_report", "entities"]
