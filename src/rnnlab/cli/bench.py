"""``rnnlab bench``: every performance measurement in one process (see rnnlab.bench.suite)."""
from __future__ import annotations

import argparse

from rnnlab.bench import SECTIONS
from rnnlab.cli.common import emit, fmt


def cmd_bench(args) -> int:
    from rnnlab.bench.suite import run_bench  # lazy: keeps rnnlab --help from loading rnnlab.bench.suite

    result = run_bench(quick=args.quick, repeats=args.repeats, only=args.only)
    if not args.json:
        for line in _bench_report(result):
            print(line)
    emit(result, args.json)
    return 0


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table (pasteable into the README)."""
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(row) + " |" for row in rows)]


def _rate(entry: dict, key: str = "tokens_per_second") -> str:
    return fmt(entry.get(key), ",.0f") if key in entry else entry.get("skipped", "-")


def _times(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _spread(entry: dict) -> str:
    return f"{100 * entry['spread']:.0f}%" if "spread" in entry else "-"


def _mib(value) -> str:
    return "-" if value is None else f"{value / 2**20:,.1f}"


def _bench_report(result: dict) -> list[str]:
    """The human form of ``rnnlab bench``: a header, then one Markdown table per section."""
    h = result["header"]
    plan = h["plan"]
    kind = (f"QUICK RUN (smoke test: {plan['repeats']} repetitions, at most {plan['max_steps']} time steps; "
            "not numbers to quote)" if h["quick"] else f"full run, {plan['repeats']} repetitions")
    load = h["load_average"] and f"load {h['load_average'][0]} -> {h['load_average_after'][0]}"
    lines = [f"rnnlab bench: {kind}",
             f"torch {h['torch']}, threads {h['threads']} (interop {h['interop_threads']}, OMP_NUM_THREADS "
             f"{h['omp_num_threads'] or 'unset'}, {h['cpus']} cpus), CPU capability {h['cpu_capability']}, "
             f"bf16 supported: {'yes' if h['bf16_supported'] else 'no'}"
             f"{'' if h.get('bf16_native', True) or not h['bf16_supported'] else ' (by conversion, no BF16 instructions)'}, "
             f"default precision {h['default_precision']}; "
             f"{load or 'load unknown'}; {h['seconds']:.0f} s",
             "medians of interleaved repetitions; spread = (slowest - fastest) / median"]
    lines += [f"warning: {w}" for w in h["warnings"]]
    sections = result["sections"]
    if "rnn" in sections:
        rows = [[e["group"], e["candidate"], e["precision"], _rate(e), _times(e["vs_book"]),
                 _times(e["vs_torch_rnn"]), _spread(e)] for e in sections["rnn"]["rows"]]
        lines += ["", "rnn: one training step, tokens/s",
                  *_table(["shape", "candidate", "precision", "tokens/s", "vs (a)", "vs (b)", "spread"], rows)]
        lines += [f"note: {n}" for n in sections["rnn"]["notes"]]
    if "gru-lstm" in sections:
        rows = [[e["group"], e["candidate"], e["precision"], _rate(e), _times(e["vs_torch"]), _spread(e)]
                for e in sections["gru-lstm"]["rows"]]
        lines += ["", "gru-lstm: one training step, tokens/s",
                  *_table(["shape", "candidate", "precision", "tokens/s", "vs torch.nn", "spread"], rows)]
        lines += [f"note: {n}" for n in sections["gru-lstm"]["notes"]]
    if "parallel" in sections:
        rows = [[e["group"], e["candidate"], e["precision"], f"{e['parameters']:,}", _rate(e), _times(e["vs_lstm"]),
                 _spread(e)] for e in sections["parallel"]["rows"]]
        lines += ["", "parallel: one training step, tokens/s",
                  *_table(["scale", "candidate", "precision", "parameters", "tokens/s", "vs rnnlab lstm", "spread"],
                          rows)]
        lines += [f"note: {n}" for n in sections["parallel"]["notes"]]
    if "roofline" in sections:
        section = sections["roofline"]
        rows = [[e["group"], e["candidate"], e["precision"], f"{e['flops_per_step'] / 1e9:.3f}",
                 fmt(e.get("achieved_flops_per_second") and e["achieved_flops_per_second"] / 1e9, ".1f"),
                 f"{e['roofline_flops_per_second'] / 1e9:.1f}", fmt(e.get("percent_of_roofline"), ".0f")]
                for e in section["rows"]]
        lines += ["", "roofline: training-step FLOPs against torch.mm at the same shapes",
                  *_table(["shape", "candidate", "precision", "GFLOP/step", "achieved GFLOP/s",
                           "roofline GFLOP/s", "% of roofline"], rows)]
        by_shape: dict[tuple, dict] = {}
        for m in section["matmul"]:
            by_shape.setdefault((m["rows"], m["inner"], m["cols"]), {})[m["precision"]] = m["flops_per_second"]
        rows = [[f"({r}, {k}) x ({k}, {n})", fmt(rates.get("fp32") and rates["fp32"] / 1e9, ".1f"),
                 fmt(rates.get("bf16") and rates["bf16"] / 1e9, ".1f")]
                for (r, k, n), rates in sorted(by_shape.items())]
        lines += ["", *_table(["torch.mm", "fp32 GFLOP/s", "bf16 GFLOP/s"], rows)]
        lines += [f"note: {n}" for n in section["notes"]]
    if "generate" in sections:
        rows = [[e["model"], str(e["streams"]), _rate(e), _spread(e), e["method"]]
                for e in sections["generate"]["rows"]]
        lines += ["", f"generate: tokens/s ({sections['generate']['rows'][0]['length']} tokens per stream)",
                  *_table(["model", "streams", "tokens/s", "spread", "timed by"], rows)]
        comparison = sections["generate"].get("end_to_end", [])
        if comparison:
            rows = [[e["candidate"], e["model"], _rate(e), _spread(e), f"{e['vs_book']:.2f}x"] for e in comparison]
            lines += ["", *_table(["end to end, one stream", "model", "tokens/s", "spread", "vs book"], rows)]
        lines += [f"note: {n}" for n in sections["generate"]["notes"]]
    if "memory" in sections:
        rows = [[e["label"], e["implementation"], e["precision"], _mib(e["peak_bytes"]), _mib(e["saved_bytes"]),
                 _mib(e["formula_bytes"]), f"{e['formula_floats_per_token']:,}"] for e in sections["memory"]["rows"]]
        lines += ["", "memory: one training step, MiB",
                  *_table(["shape", "implementation", "precision", "measured peak", "saved for backward",
                           "formula (kept)", "formula floats/token"], rows)]
        lines += [f"note: {n}" for n in sections["memory"]["notes"]]
    if "data" in sections:
        rows = []
        for e in sections["data"]["rows"]:
            if "megabytes_per_second" in e:
                rows.append([e["measure"], f"{e['megabytes']:.1f} MB", f"{e['megabytes_per_second']:,.1f} MB/s",
                             _spread(e)])
            else:
                rows.append([e["measure"], f"{e['tokens']:,} tokens", f"{e['tokens_per_second']:,.0f} tokens/s",
                             _spread(e)])
        lines += ["", "data: encoding and n-grams", *_table(["measure", "size", "rate", "spread"], rows)]
        lines += [f"note: {n}" for n in sections["data"]["notes"]]
    if "export" in sections:
        rows = [[e["candidate"], _rate(e), _times(e.get("vs_pytorch_forward")), fmt(e.get("bits_per_char"), ".4f"),
                 fmt(e.get("bits_per_char_change"), "+.4f"), fmt(e.get("bytes"), ",d"), _spread(e)]
                for e in sections["export"]["rows"]]
        lines += ["", "export: single-stream generation and held-out bits/char, PyTorch vs ONNX Runtime",
                  *_table(["candidate", "tokens/s", "vs forward", "bits/char", "change", "file bytes", "spread"],
                          rows)]
        lines += [f"note: {n}" for n in sections["export"]["notes"]]
    return lines


def add_parser(commands) -> None:
    """Register ``rnnlab bench`` on the main parser's subparsers."""
    bench = commands.add_parser("bench", help="performance: training steps, roofline, generation, memory, data",
                                description="Every performance measurement side by side in one process: medians "
                                            "of interleaved repetitions (see rnnlab.bench.suite).")
    bench.add_argument("--quick", action="store_true", help="few repetitions, small sizes: a smoke test (~40 s)")
    bench.add_argument("--repeats", type=int, default=None, help="repetitions per candidate (default 7, quick 3)")
    bench.add_argument("--only", default=None, metavar="SECTION,...", help=f"run only these: {', '.join(SECTIONS)}")
    # SUPPRESS: the global --threads handles it; this one only overrides it when given here
    bench.add_argument("--threads", type=int, default=argparse.SUPPRESS,
                       help="CPU threads for PyTorch (same as rnnlab --threads N bench)")
    bench.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    bench.set_defaults(handler=cmd_bench)
