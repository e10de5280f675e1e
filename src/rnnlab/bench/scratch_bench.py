"""Forward + backward throughput of the from-scratch RNN, side by side.

Run: ``python -m rnnlab.bench.scratch_bench [--repeats 7]``. Three implementations of the
same model (the d2l-scratch setting: vocabulary 28, hidden 512, batch 32, 35 steps),
each timed for one training step (forward, cross-entropy, backward) in tokens/s:

* ``rnnlab ScratchRNN``: gather input projection, hand-written BPTT;
* ``d2l-style autograd``: one-hot matrix products in a Python loop, autograd backward
  (the book's code, re-expressed);
* ``torch.nn.RNN + Linear``: PyTorch's fused recurrent layer.
Not a test: numbers depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def d2l_style_step(params, X, Y, vocab):
    W_xh, W_hh, b_h, W_hq, b_q = params
    H = torch.zeros(X.shape[0], W_hh.shape[0])
    outputs = []
    for x in F.one_hot(X.T, vocab).float():  # (steps, batch, vocab)
        H = torch.tanh(x @ W_xh + H @ W_hh + b_h)
        outputs.append(H @ W_hq + b_q)
    logits = torch.cat(outputs)
    loss = F.cross_entropy(logits, Y.T.reshape(-1))
    loss.backward()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps-per-repeat", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=512)
    args = parser.parse_args(argv)

    from rnnlab.models import build_model

    vocab, batch, steps, hidden = 28, 32, 35, args.hidden
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, vocab, (batch, steps), generator=g)
    Y = torch.randint(0, vocab, (batch, steps), generator=g)

    scratch = build_model("rnn-scratch", vocab, seed=0, hidden_size=hidden)
    params = [p.detach().clone().requires_grad_() for p in scratch.parameters()]
    rnn = torch.nn.RNN(vocab, hidden, batch_first=True)
    head = torch.nn.Linear(hidden, vocab)

    def scratch_step():
        logits, _ = scratch(X, scratch.begin_state(batch))
        F.cross_entropy(logits.reshape(-1, vocab), Y.reshape(-1)).backward()

    def nn_step():
        out, _ = rnn(F.one_hot(X, vocab).float(), torch.zeros(1, batch, hidden))
        F.cross_entropy(head(out).reshape(-1, vocab), Y.reshape(-1)).backward()

    candidates = {
        "rnnlab ScratchRNN (hand-written BPTT)": scratch_step,
        "d2l-style autograd (one-hot, Python loop)": lambda: d2l_style_step(params, X, Y, vocab),
        "torch.nn.RNN + Linear": nn_step,
    }
    print(f"vocab {vocab}, hidden {hidden}, batch {batch}, steps {steps}; torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}; median of {args.repeats} x {args.steps_per_repeat} steps")
    rates = {name: [] for name in candidates}
    for _ in range(args.repeats):  # interleaved, so load changes hit every candidate alike
        for name, step in candidates.items():
            step()  # warm-up
            start = time.perf_counter()
            for _ in range(args.steps_per_repeat):
                step()
            rates[name].append(batch * steps * args.steps_per_repeat / (time.perf_counter() - start))
    reference = statistics.median(rates["d2l-style autograd (one-hot, Python loop)"])
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:<44} {rate:>10,.0f} tokens/s  {rate / reference:5.2f}x d2l-style")


if __name__ == "__main__":
    main()
