"""Section 8.3, language models and the dataset: n-gram counts, Zipf, the two iterators.

The counts are deterministic and must match the book exactly. n-grams with equal
counts are listed by first occurrence in the book (a ``Counter``) and by their
vocabulary indices here, so rows compare the (n-gram, count) pairs as sets and say
when only the order of ties differs. The iterators draw a random offset, so their
printed minibatches differ from the book's draw; the rows check what the book's
figures show: the shapes, ``Y`` = ``X`` shifted by one, disjoint random subsequences,
and rows that continue from one sequential minibatch to the next.
"""
from __future__ import annotations

import numpy as np

from rnnlab.data.batches import BatchIterator
from rnnlab.data.dataset import prepare_text
from rnnlab.data.stats import corpus_stats
from rnnlab.plots import zipf_plot
from rnnlab.reproduce.common import Context, Row, SectionResult, exact
from rnnlab.reproduce.text_preprocessing import timemachine

KEY, TITLE = "8.3", "Language models and the dataset"
FIGURE = "zipf.png"
BOOK = {
    "tokens": 32_775,
    "vocab": 4_580,
    1: [["the", 2261], ["i", 1267], ["and", 1245], ["of", 1155], ["a", 816], ["to", 695], ["was", 552],
        ["in", 541], ["that", 443], ["my", 440]],
    2: [["of-the", 309], ["in-the", 169], ["i-had", 130], ["i-was", 112], ["and-the", 109], ["the-time", 102],
        ["it-was", 99], ["to-the", 85], ["as-i", 78], ["of-a", 73]],
    3: [["the-time-traveller", 59], ["the-time-machine", 30], ["the-medical-man", 24], ["it-seemed-to", 16],
        ["it-was-a", 15], ["here-and-there", 15], ["seemed-to-me", 14], ["i-did-not", 14], ["i-saw-the", 13],
        ["i-began-to", 13]],
}
# The book's minibatches of seq_data_iter_random / seq_data_iter_sequential on range(35),
# batch_size 2, num_steps 5 (one random draw each: offsets 3 and 0). X only; Y is X + 1.
BOOK_RANDOM_X = [[[13, 14, 15, 16, 17], [28, 29, 30, 31, 32]], [[3, 4, 5, 6, 7], [18, 19, 20, 21, 22]],
                 [[8, 9, 10, 11, 12], [23, 24, 25, 26, 27]]]
BOOK_SEQUENTIAL_X = [[[0, 1, 2, 3, 4], [17, 18, 19, 20, 21]], [[5, 6, 7, 8, 9], [22, 23, 24, 25, 26]],
                     [[10, 11, 12, 13, 14], [27, 28, 29, 30, 31]]]
NAMES = {1: "unigrams", 2: "bigrams", 3: "trigrams"}


def _ngram_row(n: int, ours: list) -> Row:
    book = BOOK[n]
    if ours == book:
        return exact(f"top 10 {NAMES[n]} (count)", book, ours)
    same_pairs = sorted(map(tuple, ours)) == sorted(map(tuple, book))
    return Row(f"top 10 {NAMES[n]} (count)", book, ours, match="yes" if same_pairs else "no",
               tolerance="same n-grams and counts",
               why="same n-grams and counts; ties are listed by vocabulary index here, by first occurrence "
                   "in the book" if same_pairs else "different n-grams or counts")


def _structure(batches: list, sampling: str, batch_size: int, num_steps: int) -> tuple[bool, str]:
    """Check what the book's printed minibatches illustrate; (ok, what failed)."""
    for X, Y in batches:
        if X.shape != (batch_size, num_steps) or not np.array_equal(Y, X + 1):
            return False, "shape or Y = X + 1"
    if sampling == "random":
        starts = [row[0] for X, _ in batches for row in X]
        if len(set(starts)) != len(starts) or any(s % num_steps != starts[0] % num_steps for s in starts):
            return False, "random subsequences overlap"
    else:
        for (X0, _), (X1, _) in zip(batches, batches[1:]):
            if not np.array_equal(X1[:, 0], X0[:, -1] + 1):
                return False, "sequential rows do not continue"
    return True, ""


def _iterator_rows(context: Context, result: SectionResult) -> None:
    toy = np.arange(35)
    for sampling, book_x in (("random", BOOK_RANDOM_X), ("sequential", BOOK_SEQUENTIAL_X)):
        loader = BatchIterator(toy, batch_size=2, num_steps=5, sampling=sampling, seed=context.seed)
        batches = [(X.numpy(), Y.numpy()) for X, Y in loader]
        ok, failed = _structure(batches, sampling, 2, 5)
        ours_x = [X.tolist() for X, _ in batches]
        result.rows.append(Row(
            f"{sampling} iterator on range(35), batch 2, 5 steps: minibatches X", book_x, ours_x,
            match="yes" if ok else "no", tolerance="same structure (offset is random)",
            why=("different random offset (ours from seed " f"{context.seed}); " if ours_x != book_x else "")
                + (f"structure check failed: {failed}" if not ok else "shapes, Y = X + 1 and "
                   + ("disjoint subsequences" if sampling == "random" else "rows continuing across minibatches")
                   + " as in the book")))
        result.details[f"{sampling}_iterator"] = [{"X": X.tolist(), "Y": Y.tolist()} for X, Y in batches]


def run(context: Context) -> SectionResult:
    result = SectionResult(KEY, TITLE)
    corpus = timemachine(context)
    data = prepare_text(corpus, mode="d2l", token="word", split="d2l")
    stats = corpus_stats(data.train, data.vocab, orders=(1, 2, 3), top_k=10)
    rows = result.rows
    rows.append(exact("word tokens", BOOK["tokens"], int(len(data.train))))
    rows.append(exact("word vocabulary", BOOK["vocab"], len(data.vocab)))
    for n in (1, 2, 3):
        row = _ngram_row(n, [[tok, count] for tok, count in stats[n].top])
        row.held_out = f"{stats[n].distinct:,} distinct, Zipf alpha {stats[n].zipf_alpha:.3f}"
        rows.append(row)
    zipf_plot({n: s.counts for n, s in stats.items()}, context.figure(FIGURE),
              title="The Time Machine: word n-grams (d2l mode)")
    rows.append(Row("Zipf's law", "figure only (straight lines on log-log axes)", f"see {FIGURE}",
                    held_out="fitted alpha over all n-grams: "
                             + ", ".join(f"{NAMES[n]} {s.zipf_alpha:.3f}" for n, s in stats.items())))
    result.figures.append(FIGURE)
    _iterator_rows(context, result)
    result.notes.append("rnnlab's sequential iterator draws its offset from [0, num_steps - 1] like the random one; "
                        "d2l 0.17's used random.randint(0, num_steps), inclusive. On range(35) with 5 steps, offsets "
                        "0-4 give 3 minibatches in both; the book's extra offset 5 gives only 2 (rows of 14 "
                        "tokens), the one case where the fix changes a number here. The offsets themselves are random draws (Python's random in the book, a NumPy generator "
                        "seeded with (seed, epoch) here), so the printed values differ.")
    result.details.update({"distinct": {n: s.distinct for n, s in stats.items()},
                           "zipf_alpha": {n: s.zipf_alpha for n, s in stats.items()}})
    return result
