"""The networks of the sequence tasks: a many-to-one classifier and a many-to-many tagger.

Shapes (``batch_first``; index 0 is padding in every vocabulary):

* :class:`SequenceClassifier`: ``tokens (batch, steps)`` int64 (or, with ``input_size``
  F > 0, feature vectors ``(batch, steps, F)`` float: speech frames, sensor readings)
  and ``lengths (batch,)`` -> ``logits (batch, classes)``. Embedding -> RNN/GRU/LSTM (optionally bidirectional,
  several layers) -> pooling over the real tokens (``last``: the final state of each
  direction, ``mean`` or ``max`` of the top layer's outputs) -> dropout -> linear.
* :class:`SequenceTagger`: ``words (batch, steps)``, ``chars (batch, steps, chars)``,
  ``lengths (batch,)``, ``word_lengths (batch, steps)`` -> ``logits (batch, steps, tags)``.
  Each word is a word embedding concatenated with a character-level BiLSTM's two final
  states (so an unseen word still has its spelling and capitalisation), then a BiLSTM over
  the sentence and a linear layer per token; optionally a :class:`CRF` on top scores whole
  tag sequences (so ``I-PER`` after ``O`` can be learned to be unlikely).

Padding never changes a prediction: every recurrent layer runs on
``pack_padded_sequence`` (it never sees a padding step) and pooling masks the padding
out, so a sequence alone and in a batch with longer ones gives the same output.
These layers run on ``torch.nn``'s own kernels (oneDNN on a CPU for the LSTM); the
fused GRU of :mod:`rnnlab.models.fused` does not take packed sequences.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlab.errors import UsageError
from rnnlab.models import MAX_LAYERS, MAX_SIZE, ModelOption
from rnnlab.models.base import check_positive
from rnnlab.models.dropout import Dropout
from rnnlab.models.recurrent import CELLS

POOLINGS = ("last", "mean", "max")

# The constructor options of the two networks as a saved ``config.json`` records them: what
# rnnlab.model_checkpoint.checked_options reads back (the language models' option type too).
_COUNT = 2**31 - 1  # vocabulary, class and tag counts (the JSON lists give the real number)
_COMMON_OPTIONS = (ModelOption("cell", "choice", choices=tuple(CELLS)), ModelOption("embed_size", "int", 1, MAX_SIZE),
                   ModelOption("hidden_size", "int", 1, MAX_SIZE), ModelOption("num_layers", "int", 1, MAX_LAYERS),
                   ModelOption("dropout", "float", 0, 1, high_open=True))
CLASSIFIER_OPTIONS = (ModelOption("vocab_size", "int", 1, _COUNT), ModelOption("num_classes", "int", 2, _COUNT),
                      *_COMMON_OPTIONS, ModelOption("bidirectional", "bool"),
                      ModelOption("pooling", "choice", choices=POOLINGS), ModelOption("input_size", "int", 0, MAX_SIZE))
TAGGER_OPTIONS = (ModelOption("vocab_size", "int", 1, _COUNT), ModelOption("char_vocab_size", "int", 1, _COUNT),
                  ModelOption("num_tags", "int", 1, _COUNT), *_COMMON_OPTIONS,
                  ModelOption("char_embed_size", "int", 0, MAX_SIZE), ModelOption("char_hidden_size", "int", 0, MAX_SIZE),
                  ModelOption("crf", "bool"))


def _check_common(cell: str, dropout: float) -> None:
    if cell not in CELLS:
        raise UsageError(f"unknown recurrent cell '{cell}'; choose one of {', '.join(CELLS)}")
    if not 0.0 <= dropout < 1.0:
        raise UsageError(f"dropout must be in [0, 1), got {dropout}")


def _run_packed(rnn: nn.RNNBase, inputs: torch.Tensor, lengths: torch.Tensor):
    """``rnn`` over the real steps of ``inputs (batch, steps, features)``: (outputs padded with 0, final h)."""
    packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
    outputs, state = rnn(packed)
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=inputs.shape[1])
    hidden = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
    return outputs, hidden  # hidden: (layers * directions, batch, hidden), in the batch's own order


def _last_layer_states(hidden: torch.Tensor, num_layers: int) -> torch.Tensor:
    """The top layer's final state of each direction, side by side: (batch, directions * hidden)."""
    directions = hidden.shape[0] // num_layers
    top = hidden.view(num_layers, directions, hidden.shape[1], hidden.shape[2])[-1]
    return torch.cat(list(top), dim=-1)


class SequenceClassifier(nn.Module):
    """Many-to-one: one label per sequence (see the module docstring)."""

    def __init__(self, vocab_size: int, num_classes: int, cell: str = "lstm", embed_size: int = 100,
                 hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = True, pooling: str = "max",
                 dropout: float = 0.3, input_size: int = 0) -> None:
        super().__init__()
        _check_common(cell, dropout)
        if input_size < 0:
            raise UsageError(f"input_size must be >= 0 (0: token indices), got {input_size}")
        check_positive(vocab_size=vocab_size, num_classes=num_classes, embed_size=embed_size,
                       hidden_size=hidden_size, num_layers=num_layers)
        if pooling not in POOLINGS:
            raise UsageError(f"unknown pooling '{pooling}'; choose one of {', '.join(POOLINGS)}")
        self.options = {"vocab_size": vocab_size, "num_classes": num_classes, "cell": cell,
                        "embed_size": embed_size, "hidden_size": hidden_size, "num_layers": num_layers,
                        "bidirectional": bool(bidirectional), "pooling": pooling, "dropout": dropout,
                        "input_size": input_size}
        self.pooling, self.num_layers = pooling, num_layers
        # Token indices go through an embedding; feature vectors (input_size > 0) straight into the RNN.
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=0) if not input_size else None
        self.rnn = CELLS[cell](input_size or embed_size, hidden_size, num_layers=num_layers, batch_first=True,
                               bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.drop = Dropout(dropout)
        self.output = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.drop(self.embedding(tokens)) if self.embedding is not None else tokens  # (batch, steps, in)
        outputs, hidden = _run_packed(self.rnn, embedded, lengths)  # (batch, steps, dirs * hidden)
        if self.pooling == "last":
            pooled = _last_layer_states(hidden, self.num_layers)
        else:
            mask = (torch.arange(tokens.shape[1], device=tokens.device)[None, :]
                    < lengths.to(tokens.device)[:, None]).unsqueeze(-1)  # (batch, steps, 1)
            if self.pooling == "mean":
                pooled = (outputs * mask).sum(1) / lengths.to(outputs)[:, None]
            else:
                pooled = outputs.masked_fill(~mask, float("-inf")).max(1).values
        return self.output(self.drop(pooled))  # (batch, classes)

    def config(self) -> dict:
        return dict(self.options)


class CRF(nn.Module):
    """A linear-chain conditional random field over per-token tag scores.

    ``emissions (batch, steps, tags)`` are the tagger's scores; ``transitions[i, j]`` scores
    tag ``i`` followed by tag ``j``, ``start``/``end`` the first and last tag. A path's score
    is the sum of its emission and transition scores; training minimises
    ``log Z - score(gold path)`` (the forward algorithm), prediction takes the best path
    (Viterbi). ``mask (batch, steps)`` marks the real tokens: a padded step leaves the
    recursions unchanged, so padding never changes a result.
    """

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))

    def neg_log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(batch,) ``log Z - score(tags)``; ``tags`` may hold anything at padded steps."""
        emissions = emissions.float()
        tags = tags.clamp_min(0)
        rows = torch.arange(tags.shape[0], device=tags.device)
        gold = self.start[tags[:, 0]] + emissions[rows, 0, tags[:, 0]]
        alpha = self.start + emissions[:, 0]  # (batch, tags): log-sum of the scores of paths ending in each tag
        for t in range(1, emissions.shape[1]):
            real = mask[:, t]
            step = self.transitions[tags[:, t - 1], tags[:, t]] + emissions[rows, t, tags[:, t]]
            gold = gold + step * real
            following = torch.logsumexp(alpha[:, :, None] + self.transitions[None] + emissions[:, t, None, :], dim=1)
            alpha = torch.where(real[:, None], following, alpha)
        last = tags[rows, mask.sum(1) - 1]
        gold = gold + self.end[last]
        return torch.logsumexp(alpha + self.end, dim=1) - gold

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """The best path of each sequence (Viterbi), as lists of its real length."""
        emissions = emissions.float()
        score = self.start + emissions[:, 0]  # (batch, tags): best score of a path ending in each tag
        pointers = []
        for t in range(1, emissions.shape[1]):
            candidates = score[:, :, None] + self.transitions[None]  # (batch, previous, next)
            best, previous = candidates.max(dim=1)
            pointers.append(previous)
            score = torch.where(mask[:, t, None], best + emissions[:, t], score)
        score = score + self.end
        lengths = mask.sum(1).tolist()
        paths = []
        for row, length in enumerate(lengths):
            tag = int(score[row].argmax())
            path = [tag]
            for t in range(length - 1, 0, -1):  # pointers[t - 1] leads from step t back to step t - 1
                tag = int(pointers[t - 1][row, tag])
                path.append(tag)
            paths.append(path[::-1])
        return paths


class SequenceTagger(nn.Module):
    """Many-to-many: one tag per token (see the module docstring)."""

    def __init__(self, vocab_size: int, char_vocab_size: int, num_tags: int, embed_size: int = 100,
                 char_embed_size: int = 25, char_hidden_size: int = 25, hidden_size: int = 128,
                 num_layers: int = 1, dropout: float = 0.5, cell: str = "lstm", crf: bool = False) -> None:
        super().__init__()
        _check_common(cell, dropout)
        check_positive(vocab_size=vocab_size, num_tags=num_tags, embed_size=embed_size,
                       hidden_size=hidden_size, num_layers=num_layers)
        if char_hidden_size < 0 or char_embed_size < 0 or (char_hidden_size > 0) != (char_embed_size > 0):
            raise UsageError("char_embed_size and char_hidden_size must both be positive (or both 0: no "
                             f"character encoder), got {char_embed_size} and {char_hidden_size}")
        if char_hidden_size:  # the bounds of every other size (0 was allowed above: no character encoder)
            check_positive(char_embed_size=char_embed_size, char_hidden_size=char_hidden_size)
        self.options = {"vocab_size": vocab_size, "char_vocab_size": char_vocab_size, "num_tags": num_tags,
                        "embed_size": embed_size, "char_embed_size": char_embed_size,
                        "char_hidden_size": char_hidden_size, "hidden_size": hidden_size,
                        "num_layers": num_layers, "dropout": dropout, "cell": cell, "crf": bool(crf)}
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=0)
        self.char_hidden_size = char_hidden_size
        if char_hidden_size:
            self.char_embedding = nn.Embedding(char_vocab_size, char_embed_size, padding_idx=0)
            self.char_rnn = nn.LSTM(char_embed_size, char_hidden_size, batch_first=True, bidirectional=True)
        self.rnn = CELLS[cell](embed_size + 2 * char_hidden_size, hidden_size, num_layers=num_layers,
                               batch_first=True, bidirectional=True,
                               dropout=dropout if num_layers > 1 else 0.0)
        self.drop = Dropout(dropout)
        self.output = nn.Linear(2 * hidden_size, num_tags)
        self.crf = CRF(num_tags) if crf else None  # None: each token's tag chosen on its own

    def encode_chars(self, chars: torch.Tensor, word_lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(batch, steps, 2 * char_hidden): each real word's spelling; zeros at padding."""
        words = chars[mask]  # (real words, chars): only real words go through the char LSTM
        _, hidden = _run_packed(self.char_rnn, self.char_embedding(words), word_lengths[mask])
        features = torch.cat([hidden[0], hidden[1]], dim=-1)  # forward and backward final states
        out = features.new_zeros(*chars.shape[:2], features.shape[-1])
        out[mask] = features
        return out

    def forward(self, words: torch.Tensor, chars: torch.Tensor, lengths: torch.Tensor,
                word_lengths: torch.Tensor) -> torch.Tensor:
        mask = torch.arange(words.shape[1], device=words.device)[None, :] < lengths.to(words.device)[:, None]
        features = self.embedding(words)  # (batch, steps, embed)
        if self.char_hidden_size:
            features = torch.cat([features, self.encode_chars(chars, word_lengths, mask)], dim=-1)
        outputs, _ = _run_packed(self.rnn, self.drop(features), lengths)  # (batch, steps, 2 * hidden)
        return self.output(self.drop(outputs))  # (batch, steps, tags)

    def config(self) -> dict:
        return dict(self.options)


__all__ = ["SequenceClassifier", "SequenceTagger", "CRF", "CELLS", "POOLINGS", "CLASSIFIER_OPTIONS", "TAGGER_OPTIONS"]
