"""n-gram language models: vectorised counting, MLE / add-k / modified Kneser-Ney,
perplexity with the same definition as the recurrent models, generation, ARPA files.

>>> from rnnlab.ngram import NGramLM
>>> lm = NGramLM(order=2, smoothing="addk", k=1).fit([1, 2, 1, 2, 1], vocab_size=3)
>>> round(float(lm.distribution([1])[2]), 4)   # (c(1 2) + 1) / (c(1 .) + 3) = 3 / 5
0.6
"""
from rnnlab.ngram.api import baseline, encode_for, evaluate_ids, train
from rnnlab.ngram.counts import NGramCounts, count_ngrams
from rnnlab.ngram.model import SMOOTHINGS, NGramLM
from rnnlab.ngram.store import load, save

__all__ = ["NGramLM", "NGramCounts", "count_ngrams", "SMOOTHINGS", "train", "baseline", "evaluate_ids",
           "encode_for", "save", "load"]
