"""Many-to-many: sequence tagging (named entities, parts of speech) as a task for :mod:`rnnlab.tasks.loop`.

Words are looked up lowercased (``lowercase=True``, the default) in the word
vocabulary; the character encoder sees them as written (so capitalisation still
counts), cut to :data:`MAX_WORD_CHARS` characters. Batches are dicts:
``words (batch, steps)``, ``chars (batch, steps, chars)``, ``lengths (batch,)``,
``word_lengths (batch, steps)``, ``tags (batch, steps)`` (-100 at padding, ignored
by the loss), ``indices``, ``size``. The metric the loop maximises is entity F1 when
the tags have entities (B-/I-/E-/S-), else token accuracy (part-of-speech tags).

Training replaces a word seen once by ``<unk>`` with probability ``unk_replace`` so the
model learns what to do with words it has never seen (then the character encoder
has to carry them).
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import torch
import torch.nn.functional as F

from rnnlab.checkpoint import config_value, is_number, is_str_list
from rnnlab.data.labelled import TaggedSentence, split_tag
from rnnlab.errors import DataError
from rnnlab.models.base import memory_guard
from rnnlab.model_checkpoint import checked_options
from rnnlab.tasks.base import Index, bucketed_batches, check_size, distinct_strings, pad
from rnnlab.tasks.metrics import tagging_report
from rnnlab.tasks.models import TAGGER_OPTIONS, SequenceTagger

MAX_WORD_CHARS = 30
IGNORE = -100


class TaggingTask:
    kind = "tagger"
    network_options = TAGGER_OPTIONS  # the network's options and their ranges

    def __init__(self, words: Index, chars: Index, tags: Sequence[str], lowercase: bool = True,
                 singletons: Sequence[str] = (), unk_replace: float = 0.0) -> None:
        self.words, self.chars, self.tags = words, chars, list(tags)
        self.tag_index = {tag: i for i, tag in enumerate(self.tags)}
        self.lowercase = lowercase
        self.singletons = {self.words.lookup[w] for w in singletons if w in self.words.lookup}
        self.unk_replace = unk_replace
        self._singleton_tensor = torch.tensor(sorted(self.singletons), dtype=torch.int64)
        has_entities = any(split_tag(tag)[0] in ("B", "I", "E", "S") for tag in self.tags)
        self.metric = ("entity_f1", "max") if has_entities else ("token_accuracy", "max")

    @classmethod
    def from_examples(cls, sentences: Sequence[TaggedSentence], lowercase: bool = True, min_count: int = 1,
                      max_vocab: int | None = 100_000, unk_replace: float = 0.25) -> "TaggingTask":
        word_counts = Counter(cls._word(token, lowercase) for s in sentences for token in s.tokens)
        char_counts = Counter(char for s in sentences for token in s.tokens for char in token[:MAX_WORD_CHARS])
        tags = sorted({tag for s in sentences for tag in s.tags})
        words = Index.from_counts(word_counts, min_count, max_vocab)
        singletons = [word for word, count in word_counts.items() if count == 1]
        return cls(words, Index.from_counts(char_counts), tags, lowercase, singletons, unk_replace)

    def state(self) -> dict:
        # the singletons and unk_replace make the training batches, so resuming needs them
        return {"words": self.words.tokens, "chars": self.chars.tokens, "tags": self.tags,
                "lowercase": self.lowercase, "unk_replace": self.unk_replace,
                "singletons": sorted(self.words.tokens[i] for i in self.singletons)}

    @classmethod
    def from_state(cls, state: dict) -> "TaggingTask":
        return cls(Index(state["words"]), Index(state["chars"]), state["tags"], state["lowercase"],
                   state.get("singletons", ()), state.get("unk_replace", 0.0))

    @classmethod
    def from_config(cls, folder, config: dict) -> tuple["TaggingTask", dict]:
        """(the task, the network's options) of a tagger checkpoint's ``config.json``,
        every value checked first (:class:`~rnnlab.errors.CheckpointError` naming the key)."""
        words = distinct_strings(folder, config, "task.words", "word", index=True)
        chars = distinct_strings(folder, config, "task.chars", "character", index=True)
        tags = distinct_strings(folder, config, "task.tags", "tag")
        config_value(config, "task.lowercase", folder, lambda v: isinstance(v, bool), "true or false")
        config_value(config, "task.unk_replace", folder, is_number(0, 1), "a number from 0 to 1", default=0.0)
        config_value(config, "task.singletons", folder, is_str_list, "a list of strings", default=())
        options = checked_options(folder, config, TAGGER_OPTIONS, required=True, what="tagger")
        check_size(folder, options, "vocab_size", len(words), "task.words")
        check_size(folder, options, "char_vocab_size", len(chars), "task.chars")
        check_size(folder, options, "num_tags", len(tags), "task.tags")
        return cls.from_state(config["task"]), options

    def build_model(self, seed: int | None = None, **options) -> SequenceTagger:
        options = {key: value for key, value in options.items()
                   if key not in ("vocab_size", "char_vocab_size", "num_tags")}
        with torch.random.fork_rng(devices=[]), memory_guard("the tagger"):
            if seed is not None:
                torch.manual_seed(seed)
            return SequenceTagger(len(self.words), len(self.chars), len(self.tags), **options)

    # ------------------------------------------------------------------------------
    # data

    @staticmethod
    def _word(token: str, lowercase: bool) -> str:
        return token.lower() if lowercase else token

    def check_tags(self, sentences: Sequence[TaggedSentence], source: str = "") -> None:
        """Refuse a tag the model was not trained on (it could never be predicted)."""
        for sentence in sentences:
            for offset, tag in enumerate(sentence.tags):
                if tag not in self.tag_index:
                    raise DataError(f"{source + ': ' if source else ''}line {sentence.line + offset}: tag {tag!r} "
                                    f"was never seen in training (tags: {', '.join(self.tags)})")

    def batches(self, sentences: Sequence[TaggedSentence], batch_size: int,
                generator: torch.Generator | None = None):
        for indices in bucketed_batches([len(s.tokens) for s in sentences], batch_size, generator):
            chosen = [sentences[i] for i in indices]
            words = pad([self.words.encode(self._word(t, self.lowercase) for t in s.tokens) for s in chosen])
            if generator is not None and self.unk_replace > 0 and self.singletons:
                drop = torch.isin(words, self._singleton_tensor) & (torch.rand(words.shape, generator=generator)
                                                       < self.unk_replace)
                words = words.masked_fill(drop, 1)
            lengths = torch.tensor([len(s.tokens) for s in chosen])
            real = torch.arange(words.shape[1])[None, :] < lengths[:, None]  # (batch, steps)
            # every real word of the batch spelled out, row-major (the order of real's True entries)
            spelled = pad([self.chars.encode(t[:MAX_WORD_CHARS]) for s in chosen for t in s.tokens])
            chars = torch.zeros(*words.shape, spelled.shape[1], dtype=torch.int64)
            chars[real] = spelled
            word_lengths = torch.zeros(words.shape, dtype=torch.int64)
            word_lengths[real] = torch.tensor([min(len(t), MAX_WORD_CHARS) for s in chosen for t in s.tokens])
            tags = torch.full(words.shape, IGNORE, dtype=torch.int64)
            tags[real] = torch.tensor([self.tag_index.get(t, IGNORE) for s in chosen for t in s.tags])
            yield {"words": words, "chars": chars, "lengths": lengths, "word_lengths": word_lengths,
                   "tags": tags, "indices": indices, "size": len(indices)}

    # ------------------------------------------------------------------------------
    # training and scoring

    def _logits(self, model: SequenceTagger, batch: dict) -> torch.Tensor:
        device = next(model.parameters()).device
        return model(batch["words"].to(device), batch["chars"].to(device), batch["lengths"],
                     batch["word_lengths"].to(device))

    @staticmethod
    def _summed_loss(model: SequenceTagger, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """The batch's loss summed over sentences: each sentence's summed token cross-entropy,
        or with a CRF its negative log-likelihood (both grow with the sentence's length)."""
        tags = batch["tags"].to(logits.device)
        if model.crf is not None:
            return model.crf.neg_log_likelihood(logits, tags, tags != IGNORE).sum()
        return F.cross_entropy(logits.float().flatten(0, 1), tags.flatten(), ignore_index=IGNORE, reduction="sum")

    def loss(self, model: SequenceTagger, batch: dict) -> torch.Tensor:
        logits = self._logits(model, batch)  # (batch, steps, tags)
        return self._summed_loss(model, logits, batch) / batch["size"]  # mean over sentences

    @torch.no_grad()
    def _predict(self, model: SequenceTagger, sentences: Sequence[TaggedSentence],
                 batch_size: int = 64) -> tuple[list[list[str]], float]:
        """(the most probable tag of each token, per sentence in the order given; the mean loss per sentence)."""
        was_training = model.training
        model.eval()
        out: list[list[str]] = [[] for _ in sentences]
        total = 0.0
        for batch in self.batches(sentences, batch_size):
            logits = self._logits(model, batch)
            if (batch["tags"] != IGNORE).sum() == batch["lengths"].sum():  # gold tags known (not a prediction)
                total += self._summed_loss(model, logits, batch).item()
            if model.crf is not None:
                mask = torch.arange(logits.shape[1])[None, :] < batch["lengths"][:, None]
                best = model.crf.decode(logits, mask.to(logits.device))
            else:
                best = logits.argmax(-1).cpu().tolist()
            for row, index in enumerate(batch["indices"]):
                out[index] = [self.tags[i] for i in best[row][:len(sentences[index].tokens)]]
        model.train(was_training)
        return out, total / max(len(sentences), 1)

    def predict_tags(self, model: SequenceTagger, sentences: Sequence[TaggedSentence],
                     batch_size: int = 64) -> list[list[str]]:
        """The most probable tag of each token, sentence by sentence, in the order given."""
        return self._predict(model, sentences, batch_size)[0]

    def predict(self, model: SequenceTagger, token_lists: Sequence[Sequence[str]], batch_size: int = 64) -> list[list]:
        """``[[token, tag], ...]`` per sentence."""
        sentences = [TaggedSentence(tuple(tokens), ("O",) * len(tokens), i + 1) for i, tokens in enumerate(token_lists)]
        tags = self.predict_tags(model, sentences, batch_size)
        return [[[token, tag] for token, tag in zip(s.tokens, t)] for s, t in zip(sentences, tags)]

    def evaluate(self, model: SequenceTagger, sentences: Sequence[TaggedSentence], batch_size: int = 64) -> dict:
        """:func:`tagging_report` plus ``loss``, the mean cross-entropy (nats) of the gold tags per sentence."""
        predicted, loss = self._predict(model, sentences, batch_size)
        return {**tagging_report([s.tags for s in sentences], predicted), "loss": loss}


__all__ = ["TaggingTask", "MAX_WORD_CHARS"]
