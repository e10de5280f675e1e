"""Section 8.2, text preprocessing: the Time Machine's lines, tokens and vocabulary.

Deterministic, so every row must match the book exactly. One difference is by design:
rnnlab's vocabulary breaks frequency ties by the token (alphabetical), d2l's by first
occurrence, which moves the indices of words of equal count (the book's 'h', 'g',
'wells', 'twinkled'...). The same rows with ``Vocab(ties="first")`` reproduce the book's
indices, which shows that the tie order is the only cause.
"""
from __future__ import annotations

from rnnlab.data.corpus import load_corpus
from rnnlab.data.text import preprocess, tokenize
from rnnlab.data.vocab import Vocab
from rnnlab.reproduce.common import Context, SectionResult, exact

KEY, TITLE = "8.2", "Text preprocessing"
BOOK = {
    "lines": 3221,
    "line_0": "the time machine by h g wells",
    "line_10": "twinkled and his usually pale face was flushed and animated the",
    "top_10": [["<unk>", 0], ["the", 1], ["i", 2], ["and", 3], ["of", 4], ["a", 5], ["to", 6], ["was", 7],
               ["in", 8], ["that", 9]],
    "indices_0": [1, 19, 50, 40, 2183, 2184, 400],
    "indices_10": [2186, 3, 25, 1044, 362, 113, 7, 1421, 3, 1045, 1],
    "char_tokens": 170_580,
    "char_vocab": 28,
}
TIE_REASON = ("rnnlab orders words of equal frequency alphabetically, d2l by first occurrence; "
              "with Vocab(ties='first') ours are {first}")


def timemachine(context: Context):
    if "timemachine" not in context.cache:
        context.cache["timemachine"] = load_corpus("timemachine", data_dir=context.data_dir)
    return context.cache["timemachine"]


def run(context: Context) -> SectionResult:
    result = SectionResult(KEY, TITLE)
    corpus = timemachine(context)
    lines = preprocess(corpus.text, mode="d2l")
    words = tokenize(lines, token="word", mode="d2l")
    vocab = Vocab(words)
    book_order = Vocab(words, ties="first")
    rows = result.rows
    rows.append(exact("text lines", BOOK["lines"], len(lines)))
    rows.append(exact("lines[0]", BOOK["line_0"], lines[0]))
    rows.append(exact("lines[10]", BOOK["line_10"], lines[10]))
    rows.append(exact("first 10 word-vocabulary entries (token, index)", BOOK["top_10"],
                      [[tok, idx] for tok, idx in list(vocab.token_to_idx.items())[:10]]))
    for n, key in ((0, "indices_0"), (10, "indices_10")):
        line_words = tokenize(lines[n], token="word", mode="d2l")
        first = book_order[line_words]
        rows.append(exact(f"indices of lines[{n}] ({' '.join(line_words[:4])} ...)", BOOK[key], vocab[line_words],
                          why_if_not=TIE_REASON.format(first=first)))
    chars = tokenize(lines, token="char", mode="d2l")
    rows.append(exact("character tokens, len(corpus)", BOOK["char_tokens"], len(chars)))
    rows.append(exact("character vocabulary, len(vocab)", BOOK["char_vocab"], len(Vocab(chars))))
    result.details = {"word_tokens": len(words), "word_vocab": len(vocab),
                      "book_tie_order_indices": {k: book_order[tokenize(lines[n], token="word", mode="d2l")]
                                                 for n, k in ((0, "indices_0"), (10, "indices_10"))}}
    return result
