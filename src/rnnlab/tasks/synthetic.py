"""Generated data that needs context, for tests, examples and the README (no downloads).

* :func:`ambiguous_entities`: sentences in which the token ``apple`` is a company
  (``B-ORG``) or a fruit (``O``) depending on the words before or after it
  ("she ate an apple", "apple shares fell"), among person and place names
  (``B-PER I-PER``, ``B-LOC I-LOC``). A tagger that reads one token at a time
  cannot do better than the majority tag for ``apple``; a bidirectional one can.
* :func:`distant_cue_texts`: texts whose label is decided by their first word, followed by
  15-30 words of filler: the cue is far from the end.

* :func:`tone_sequences`: numeric sequences (the chapter's speech frames): two features
  per step, a noisy sine of a low or a high frequency; the label is the frequency.

All are functions of ``seed`` only.
"""
from __future__ import annotations

import csv
import random

import numpy as np

from rnnlab.data.labelled import FeatureSequence, LabelledText, TaggedSentence

FIRST_NAMES = ["anna", "ben", "carla", "david", "emma", "felix", "grace", "hugo", "iris", "jonas"]
LAST_NAMES = ["smith", "meyer", "garcia", "chen", "novak", "rossi", "dubois", "kim"]
PLACES = [["paris"], ["berlin"], ["new", "york"], ["hong", "kong"], ["lima"], ["buenos", "aires"]]
AMBIGUOUS = "apple"

# (words before, words after); "{A}" is the ambiguous token, "{P}" a person, "{L}" a place.
FRUIT_TEMPLATES = [
    "{P} ate an {A} in {L}", "i like eating {A} pie", "{P} peeled the {A} slowly", "a ripe {A} fell from the tree",
    "she cut the {A} into slices", "{P} bought a green {A} at the market", "the {A} tastes sweet",
    "an {A} a day keeps the doctor away", "{P} baked an {A} cake in {L}", "this {A} is juicy and fresh",
]
COMPANY_TEMPLATES = [
    "{P} works for {A} in {L}", "{A} shares fell in {L}", "{A} announced a new phone", "{P} sued {A} yesterday",
    "{A} is a great company", "the chief of {A} visited {L}", "{A} reported record profits",
    "investors sold {A} stock", "{P} joined {A} last year", "{A} opened an office in {L}",
]


def _fill(template: str, company: bool, rng: random.Random) -> TaggedSentence:
    tokens: list[str] = []
    tags: list[str] = []
    for word in template.split():
        if word == "{A}":
            tokens.append(AMBIGUOUS)
            tags.append("B-ORG" if company else "O")
        elif word == "{P}":
            tokens += [rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)]
            tags += ["B-PER", "I-PER"]
        elif word == "{L}":
            place = rng.choice(PLACES)
            tokens += place
            tags += ["B-LOC"] + ["I-LOC"] * (len(place) - 1)
        else:
            tokens.append(word)
            tags.append("O")
    return TaggedSentence(tuple(tokens), tuple(tags), 0)


def ambiguous_entities(count: int, seed: int = 0) -> list[TaggedSentence]:
    """``count`` sentences, half with ``apple`` the company (see the module docstring)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        company = i % 2 == 1
        template = rng.choice(COMPANY_TEMPLATES if company else FRUIT_TEMPLATES)
        out.append(_fill(template, company, rng))
    rng.shuffle(out)
    return out


FILLER = ("the a of and to in cat dog bird runs sits sleeps blue red green house tree river over under "
          "near far slowly quickly every day night").split()
CUES = {"pos": ["great", "excellent", "lovely"], "neg": ["awful", "terrible", "dreadful"]}


def distant_cue_texts(count: int, seed: int = 0, min_filler: int = 15, max_filler: int = 30) -> list[LabelledText]:
    """``count`` texts labelled ``pos``/``neg`` by their first word (see the module docstring)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        label = rng.choice(sorted(CUES))
        words = [rng.choice(CUES[label])] + [rng.choice(FILLER) for _ in range(rng.randint(min_filler, max_filler))]
        out.append(LabelledText(" ".join(words), label, i + 2))
    return out


def tone_sequences(count: int, seed: int = 0, min_steps: int = 20, max_steps: int = 40) -> list:
    """``count`` labelled :class:`~rnnlab.data.labelled.FeatureSequence` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        label = "high" if i % 2 else "low"
        steps = int(rng.integers(min_steps, max_steps + 1))
        frequency = (0.35 if label == "high" else 0.12) * (1 + 0.1 * rng.standard_normal())
        t = np.arange(steps) + rng.uniform(0, 10)
        features = np.stack([np.sin(2 * np.pi * frequency * t), 0.5 * np.cos(2 * np.pi * frequency * t)], axis=1)
        features += 0.3 * rng.standard_normal(features.shape)
        out.append(FeatureSequence(features.astype(np.float32), label, i + 2, f"clip{i}"))
    return out


def write_feature_csv(sequences, path) -> None:
    """Write sequences as a CSV file: ``id,step,f0,f1,...,label``, one row per step."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        width = sequences[0].features.shape[1]
        writer.writerow(["id", "step", *(f"f{j}" for j in range(width)), "label"])
        for sequence in sequences:
            for step, vector in enumerate(sequence.features):
                writer.writerow([sequence.id, step, *(f"{v:.5g}" for v in vector), sequence.label])


def write_conll(sentences, path) -> None:
    """Write sentences as a two-column CoNLL file (token, tag; blank line between sentences)."""
    with open(path, "w", encoding="utf-8") as handle:
        for sentence in sentences:
            for token, tag in zip(sentence.tokens, sentence.tags):
                handle.write(f"{token} {tag}\n")
            handle.write("\n")


def write_csv(texts, path) -> None:
    """Write texts as a CSV file with a ``text,label`` header."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for example in texts:
            writer.writerow([example.text, example.label])


__all__ = ["ambiguous_entities", "distant_cue_texts", "tone_sequences", "write_conll", "write_csv",
           "write_feature_csv", "AMBIGUOUS"]
