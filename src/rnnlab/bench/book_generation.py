"""The book's generation procedure (d2l 8.5, ``predict_ch8``), for the bench's side-by-side rows.

The book's from-scratch RNN is a list of parameter tensors that require gradients
(``W_xh (V, H)``, ``W_hh (H, H)``, ``b_h (H,)``, ``W_hq (H, V)``, ``b_q (V,)``) and a
Python forward over one-hot inputs::

    H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h);  O_t = H_t W_hq + b_q

``predict_ch8`` feeds the prefix one character per forward call (the warm-up: only the
state is kept), then for each new character calls the forward on a fresh ``(1, 1)``
tensor of the last output, takes the argmax, and converts it to a Python int; at the
end it joins the tokens of all ids. As in the book, nothing is wrapped in
``torch.no_grad``, so autograd records every step. Written here from the book's
description so that the bench can time it in the same process as rnnlab's path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from rnnlab.data.vocab import Vocab


class BookScratchRNN:
    """The book's ``RNNModelScratch`` around a copy of an rnnlab ``rnn-scratch`` model's weights."""

    def __init__(self, model) -> None:
        self.params = [p.detach().clone().requires_grad_() for p in (model.W_xh, model.W_hh, model.b_h,
                                                                      model.W_hq, model.b_q)]
        self.vocab_size, self.hidden_size = model.W_xh.shape

    def __call__(self, X: torch.Tensor, state: tuple[torch.Tensor]):
        """``X`` ``(batch, steps)`` ids -> outputs ``(steps * batch, V)`` and the state ``(H_T,)``."""
        inputs = F.one_hot(X.T, self.vocab_size).type(torch.float32)  # (steps, batch, V)
        W_xh, W_hh, b_h, W_hq, b_q = self.params
        H, = state
        outputs = []
        for X_t in inputs:
            H = torch.tanh(torch.mm(X_t, W_xh) + torch.mm(H, W_hh) + b_h)
            outputs.append(torch.mm(H, W_hq) + b_q)
        return torch.cat(outputs, dim=0), (H,)

    def begin_state(self, batch_size: int) -> tuple[torch.Tensor]:
        return (torch.zeros((batch_size, self.hidden_size)),)


def predict_ch8(prefix: str, num_preds: int, net: BookScratchRNN, vocab: Vocab) -> str:
    """The prefix followed by ``num_preds`` greedy characters, one forward call per character."""
    state = net.begin_state(batch_size=1)
    outputs = [vocab[prefix[0]]]

    def get_input() -> torch.Tensor:
        return torch.tensor([outputs[-1]]).reshape((1, 1))

    for y in prefix[1:]:  # warm-up: the state only
        _, state = net(get_input(), state)
        outputs.append(vocab[y])
    for _ in range(num_preds):
        y, state = net(get_input(), state)
        outputs.append(int(y.argmax(dim=1).reshape(1)))
    return "".join(vocab.idx_to_token[i] for i in outputs)
