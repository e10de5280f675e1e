"""The matrix-product roofline of a training step: how close it runs to bare ``torch.mm``.

For each product shape (M, K) x (K, N) a training step uses (:meth:`Shape.products`,
M = batch), :func:`matmul_candidates` times ``torch.mm`` alone, in float32 and in
bfloat16, in the same process and repetitions scheme as the steps, giving a rate
R(M, K, N, dtype) in FLOP/s. The time one step would take if it did nothing but its
products, each at that rate, is::

    t_roof = 3 * sum over products p of  count_p * 2 M_p K_p N_p / R(M_p, K_p, N_p, dtype)

(the backward's two products per forward product are taken at the forward shape's
rate), and a row's ``% of roofline`` is ``100 * t_roof / t_measured``. Below 100%:
time goes to the sequential loop's overheads, elementwise work, memory traffic, or
products at shapes that run slower than the forward one; above 100% is possible when
an implementation batches products over time steps (M = batch * steps runs faster
than M = batch).
"""
from __future__ import annotations

import torch

from rnnlab.bench.steps import Shape
from rnnlab.bench.timing import Candidate, Measurement

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_key(rows: int, inner: int, cols: int, precision: str) -> str:
    return f"mm {rows}x{inner}x{cols} {precision}"


def matmul_candidates(shapes: list[Shape], precisions: tuple[str, ...]) -> list[Candidate]:
    """One ``torch.mm`` candidate per distinct product shape and precision; ``work`` is FLOPs."""
    seen, candidates = set(), []
    generator = torch.Generator().manual_seed(0)
    for shape in shapes:
        for product in shape.products():
            for precision in precisions:
                key = matmul_key(product.rows, product.inner, product.cols, precision)
                if key in seen:
                    continue
                seen.add(key)
                dtype = DTYPES[precision]
                a = torch.randn(product.rows, product.inner, generator=generator).to(dtype)
                b = torch.randn(product.inner, product.cols, generator=generator).to(dtype)
                out = torch.empty(product.rows, product.cols, dtype=dtype)
                candidates.append(Candidate(key, lambda a=a, b=b, out=out: torch.mm(a, b, out=out),
                                            2.0 * product.rows * product.inner * product.cols))
    return candidates


def roofline_seconds(shape: Shape, precision: str, rates: dict[str, Measurement]) -> float:
    """``t_roof`` of one training step (module docstring) from the measured ``torch.mm`` rates."""
    total = 0.0
    for product in shape.products():
        rate = rates[matmul_key(product.rows, product.inner, product.cols, precision)].rate
        total += 3.0 * product.flops / rate
    return total
