"""Language-model metrics shared by recurrent and n-gram models.

Every evaluation reduces to the summed negative log-likelihood in nats over the
predicted tokens; perplexity and bits per token follow from it, so numbers from
different model families are directly comparable.
"""
from __future__ import annotations

import math


def perplexity(total_nll: float, tokens: int) -> float:
    """``exp(total_nll / tokens)``; ``total_nll`` in nats. ``inf`` on overflow, NaN for no tokens."""
    if tokens <= 0:
        return float("nan")
    mean = total_nll / tokens
    return math.exp(mean) if mean < 700 else float("inf")


def per_char_fields(nats_total: float, chars: int) -> dict:
    """``chars``, ``nats_per_char`` and ``bits_per_char`` of a total log-loss in nats."""
    if chars <= 0:
        return {"chars": int(chars), "nats_per_char": None, "bits_per_char": None}
    nats = nats_total / chars
    return {"chars": int(chars), "nats_per_char": nats, "bits_per_char": nats / math.log(2)}


def bits_per_token(total_nll: float, tokens: int) -> float:
    return total_nll / tokens / math.log(2) if tokens > 0 else float("nan")


def lm_result(total_nll: float, tokens: int, unknown_tokens: int = 0) -> dict:
    """The one result dict of every language-model evaluation (the ``--json`` keys)."""
    return {"perplexity": perplexity(total_nll, tokens), "bits_per_token": bits_per_token(total_nll, tokens),
            "nll_nats": total_nll, "tokens": int(tokens), "unknown_tokens": int(unknown_tokens)}
