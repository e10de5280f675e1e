"""Quality per CPU-minute: the sweep behind rnnlab's budget-aware defaults.

    python benchmarks/sweep.py probe              # 2-thread tokens/s of every candidate (run alone)
    python benchmarks/sweep.py run [--only ...]   # the jobs, two single-thread runs side by side
    python benchmarks/sweep.py report             # the table (Markdown) and the figure

Each corpus is cut into a training text (its first 90%) and a held-out text (the
contiguous last 10%) that no run and no choice sees; rnnlab keeps 2% of the training
text for its own validation. Every number reported is held-out nats per character.

A budget of S seconds is counted in optimizer steps: ``S x (tokens/s of that
configuration on 2 threads, measured by ``probe`` with nothing else running) / (batch x
steps)``. So the runs can go two at a time on one thread each (they then train
exactly what S seconds buy on two threads, whatever else the machine does), and a
job's result does not depend on the machine's load while the sweep runs.

Beside the candidates: ``plain``, a 30-line ``torch.nn.LSTM`` script (embedding 64,
2 x 512, dropout 0.1, batch 64 x 100 with the state carried, Adam 2e-3 constant, clip 5,
float32, no early stopping), and the 5-gram Kneser-Ney model of the training text.
Results go to ``benchmarks/results/sweep.jsonl`` (one line per job; a job already
there is skipped, so the sweep can be spread over several sessions).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WORK = Path(os.environ.get("RNNLAB_SWEEP_DIR", "/tmp/rnnlab-sweep"))
CORPUS_CHARS = 1_000_000

# ---- corpora: none of them is the built-in corpus or the Time Machine except those two ----------------
def _read_files(pattern: str) -> str:
    parts = []
    for path in sorted(glob.glob(pattern, recursive=True)):
        plain_name = "." not in os.path.basename(path) or path.endswith((".py", ".pod", ".md"))
        if plain_name and os.path.isfile(path) and not os.path.islink(path):
            try:
                parts.append(Path(path).read_text(encoding="utf-8"))
            except (UnicodeDecodeError, OSError):
                continue
        if sum(map(len, parts)) > CORPUS_CHARS:
            break
    return "".join(parts)


def corpus_texts() -> dict[str, str]:
    """name -> text (at most CORPUS_CHARS characters), for the corpora present on this machine."""
    found: dict[str, str] = {}
    from rnnlab.data.corpus import builtin_text
    found["pydoc"] = builtin_text("pydoc")
    data = os.environ.get("RNNLAB_DATA", str(HERE.parent.parent / "shared" / "data"))
    if os.path.exists(f"{data}/timemachine.txt"):
        found["timemachine"] = Path(f"{data}/timemachine.txt").read_text(encoding="utf-8")
    sources = {
        # English and Markdown: the Rust release notes shipped with the Rust toolchain
        "rust-releases": os.path.expanduser("~/.rustup/toolchains/stable-*/share/doc/rust/html/releases.md"),
        # English quotations and jokes (Debian package fortunes)
        "fortunes-en": "/usr/share/games/fortunes/*",
        # German (Debian package fortunes-de)
        "fortunes-de": "/usr/share/games/fortunes/de/*",
        # Python source code: the standard library's
        "python-code": f"{os.path.dirname(os.__file__)}/[a-m]*.py",
        # English technical prose: Perl's documentation (held out from every choice: the final check)
        "perlpod": "/usr/share/perl/*/pod/*.pod",
    }
    for name, pattern in sources.items():
        text = _read_files(pattern)
        if len(text) > 100_000:
            found[name] = text
    return {name: text[:CORPUS_CHARS] for name, text in found.items()}


def prepare_corpora() -> dict[str, dict]:
    """Write ``WORK/<name>/train.txt`` and ``heldout.txt``; return their paths and sizes."""
    out = {}
    for name, text in corpus_texts().items():
        folder = WORK / name
        folder.mkdir(parents=True, exist_ok=True)
        cut = int(len(text) * 0.9)
        (folder / "train.txt").write_text(text[:cut], encoding="utf-8")
        (folder / "heldout.txt").write_text(text[cut:], encoding="utf-8")
        out[name] = {"train": str(folder / "train.txt"), "heldout": str(folder / "heldout.txt"),
                     "train_chars": cut, "heldout_chars": len(text) - cut}
    return out


# ---- candidates ----------------------------------------------------------------------------------
def lstm(hidden, batch=32, steps=64, lr=6e-3, dropout=0.2, layers=2, model="lstm", adam_beta2=0.999, **loop):
    return dict(model=model, hidden_size=hidden, num_layers=layers, embed_size=64, dropout=dropout,
                batch_size=batch, num_steps=steps, lr=lr, adam_beta2=adam_beta2, **loop)


def parallel(model, hidden, layers, mlp_ratio, batch=32, steps=128, lr=4e-3, dropout=0.1, adam_beta2=0.999):
    return dict(model=model, hidden_size=hidden, num_layers=layers, mlp_ratio=mlp_ratio, dropout=dropout,
                batch_size=batch, num_steps=steps, lr=lr, adam_beta2=adam_beta2)


CANDIDATES = {
    "lstm-256": lstm(256),                                   # the defaults before the budget rule
    "lstm-384": lstm(384, batch=64, lr=4e-3),
    "lstm-512": lstm(512, batch=64, steps=100, lr=3e-3),
    "lstm-768": lstm(768, batch=64, steps=100, lr=2e-3, dropout=0.25),
    "gru-384": lstm(384, batch=64, lr=4e-3, model="gru"),
    "mingru-2x384": parallel("mingru", 384, 2, 0.0),
    "mingru-3x256-mlp2": parallel("mingru", 256, 3, 2.0),
    "mingru-3x384-mlp2": parallel("mingru", 384, 3, 2.0, batch=64),
    "minlstm-3x256-mlp2": parallel("minlstm", 256, 3, 2.0),
    # smaller and faster, for short budgets in float32
    "lstm-192": lstm(192, lr=8e-3, dropout=0.1),
    "lstm-1x512": lstm(512, layers=1, lr=6e-3, dropout=0.1),
    "lstm-256-b16": lstm(256, batch=16),
    "lstm-256-lr1e-2": lstm(256, lr=1e-2),
    "gru-256": lstm(256, model="gru"),
    "mingru-3x192-mlp2": parallel("mingru", 192, 3, 2.0),
    "mingru-3x256-mlp2-t64": parallel("mingru", 256, 3, 2.0, steps=64, lr=6e-3),
    "lstm-128": lstm(128, lr=1e-2, dropout=0.1),
    "lstm-192-d0": lstm(192, lr=8e-3, dropout=0.0),
    "lstm-192-t32": lstm(192, steps=32, lr=8e-3, dropout=0.1),
    "lstm-192-b16": lstm(192, batch=16, lr=8e-3, dropout=0.1),
    "mingru-3x192-mlp2-t64": parallel("mingru", 192, 3, 2.0, steps=64, lr=6e-3),
    "lstm-384-d1": lstm(384, batch=64, lr=4e-3, dropout=0.1),
    # Adam's beta2 0.99 instead of 0.999, and the 2 x 256 with dropout 0.1
    "lstm-192-b99": lstm(192, lr=8e-3, dropout=0.1, adam_beta2=0.99),
    "lstm-192-b95": lstm(192, lr=8e-3, dropout=0.1, adam_beta2=0.95),
    "lstm-256-d1": lstm(256, dropout=0.1),
    "lstm-256-d1-b99": lstm(256, dropout=0.1, adam_beta2=0.99),
    "lstm-384-d1-b99": lstm(384, batch=64, lr=4e-3, dropout=0.1, adam_beta2=0.99),
    # beta2 0.95 (today's default) with and without AdamW's decoupled weight decay 0.1
    "lstm-192-b95-wd1": lstm(192, lr=8e-3, dropout=0.1, adam_beta2=0.95, optimizer="adamw", weight_decay=0.1),
    "lstm-384-d1-b95": lstm(384, batch=64, lr=4e-3, dropout=0.1, adam_beta2=0.95),
    # dropout against the epochs a budget buys (2 x 256, today's 300-s rung)
    "lstm-256-d1-b95": lstm(256, dropout=0.1, adam_beta2=0.95),
    "lstm-256-d3-b95": lstm(256, dropout=0.3, adam_beta2=0.95),
    "lstm-384-d1-b95-wd1": lstm(384, batch=64, lr=4e-3, dropout=0.1, adam_beta2=0.95, optimizer="adamw",
                                weight_decay=0.1),
    # dropout against overfitting at 20 minutes (today's 1200-s rung, 2 x 384, trains ~26 epochs of 1 MB)
    "lstm-384-d2-b95": lstm(384, batch=64, lr=4e-3, dropout=0.2, adam_beta2=0.95),
    "lstm-384-d3-b95": lstm(384, batch=64, lr=4e-3, dropout=0.3, adam_beta2=0.95),
    # the same question at 100 s on the Time Machine (the demo's corpus: 2 x 192 trains ~24 epochs of it)
    "lstm-192-d2-b95": lstm(192, lr=8e-3, dropout=0.2, adam_beta2=0.95),
    "lstm-192-d3-b95": lstm(192, lr=8e-3, dropout=0.3, adam_beta2=0.95),
    # the remaining rungs of rnnlab.training.budget.LADDERS (their speed ratios)
    "gru-192": lstm(192, lr=8e-3, dropout=0.1, model="gru"),
    "minlstm-3x192-mlp2-t64": parallel("minlstm", 192, 3, 2.0, steps=64, lr=6e-3),
    "minlstm-3x256-mlp2-t64": parallel("minlstm", 256, 3, 2.0, steps=64, lr=6e-3),
    "mingru-4x768-mlp2": parallel("mingru", 768, 4, 2.0, batch=64, lr=2e-3, dropout=0.2),
    "minlstm-4x768-mlp2": parallel("minlstm", 768, 4, 2.0, batch=64, lr=2e-3, dropout=0.2),
    "gru-512": lstm(512, batch=64, steps=100, lr=3e-3, model="gru"),
    "gru-768": lstm(768, batch=64, steps=100, lr=2e-3, dropout=0.25, model="gru"),
    "mingru-4x512-mlp2": parallel("mingru", 512, 4, 2.0, batch=64, lr=3e-3, dropout=0.15),
    "minlstm-2x384": parallel("minlstm", 384, 2, 0.0),
    "minlstm-3x384-mlp2": parallel("minlstm", 384, 3, 2.0, batch=64),
    "minlstm-4x512-mlp2": parallel("minlstm", 512, 4, 2.0, batch=64, lr=3e-3, dropout=0.15),
    # batch 32 instead of 64 for the 2 x 384 (float32 on 2 threads: the same tokens/s, twice the updates)
    "lstm-384-d2-b95-b32": lstm(384, batch=32, lr=4e-3, dropout=0.2, adam_beta2=0.95),
    "lstm-384-d2-b95-b32-lr3": lstm(384, batch=32, lr=3e-3, dropout=0.2, adam_beta2=0.95),
}
# Keys of a candidate that are the loop's options, not the model's (the probe leaves them out).
LOOP_KEYS = ("model", "batch_size", "num_steps", "lr", "adam_beta2", "optimizer", "weight_decay")
PLAIN = dict(hidden=512, layers=2, embed=64, dropout=0.1, batch=64, steps=100, lr=2e-3, clip=5.0)


# ---- throughput probe (2 threads, nothing else running) --------------------------------------------
def probe_rate(spec: dict, precision: str, vocab: int = 100, repeats: int = 8) -> float:
    """Median training tokens/s of ``spec`` (one step: forward, backward, clip, Adam)."""
    import torch
    from rnnlab.models import build_model
    from rnnlab.precision import autocast
    options = {k: v for k, v in spec.items() if k not in LOOP_KEYS}
    model = build_model(spec["model"], vocab, seed=0, **options)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    B, T = spec["batch_size"], spec["num_steps"]
    X, Y = torch.randint(0, vocab, (B, T)), torch.randint(0, vocab, (B, T))
    state = model.begin_state(B)
    times = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        with autocast("cpu", precision):
            logits, _ = model(X, state)
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, vocab), Y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return B * T / sorted(times)[len(times) // 2]


def plain_rate(vocab: int = 100) -> float:
    import torch
    model, optimizer, _ = _plain_model(vocab)
    B, T = PLAIN["batch"], PLAIN["steps"]
    X, Y = torch.randint(0, vocab, (B, T)), torch.randint(0, vocab, (B, T))
    times = []
    for i in range(8):
        start = time.perf_counter()
        _plain_step(model, optimizer, X, Y, None)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return B * T / sorted(times)[len(times) // 2]


def cmd_probe(args) -> None:
    import torch
    torch.set_num_threads(2)
    rates = _load_rates()
    for name, spec in CANDIDATES.items():
        for precision in ("fp32", "bf16"):
            key = f"{name}/{precision}"
            if key not in rates or args.again:
                rates[key] = probe_rate(spec, precision)
                print(f"{key:28s} {rates[key]:>9,.0f} tokens/s", flush=True)
    if "plain/fp32" not in rates or args.again:
        rates["plain/fp32"] = plain_rate()
        print(f"{'plain/fp32':28s} {rates['plain/fp32']:>9,.0f} tokens/s")
    rates["threads"] = 2
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rates.json").write_text(json.dumps(rates, indent=1, sort_keys=True))


def _load_rates() -> dict:
    path = RESULTS / "rates.json"
    return json.loads(path.read_text()) if path.exists() else {}


# ---- the plain nn.LSTM script ----------------------------------------------------------------------
def _plain_model(vocab: int):
    import torch
    from torch import nn

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, PLAIN["embed"])
            self.lstm = nn.LSTM(PLAIN["embed"], PLAIN["hidden"], PLAIN["layers"], batch_first=True,
                                dropout=PLAIN["dropout"])
            self.drop = nn.Dropout(PLAIN["dropout"])
            self.out = nn.Linear(PLAIN["hidden"], vocab)

        def forward(self, x, state=None):
            y, state = self.lstm(self.embed(x), state)
            return self.out(self.drop(y)), state

    torch.manual_seed(0)
    model = Plain()
    return model, torch.optim.Adam(model.parameters(), lr=PLAIN["lr"]), nn.functional.cross_entropy


def _plain_step(model, optimizer, X, Y, state):
    import torch
    logits, state = model(X, state)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), PLAIN["clip"])
    optimizer.step()
    return tuple(s.detach() for s in state), loss.item()


def run_plain(corpus: dict, steps: int) -> dict:
    import numpy as np
    import torch
    train = Path(corpus["train"]).read_text(encoding="utf-8")
    chars = sorted(set(train))
    index = {c: i + 1 for i, c in enumerate(chars)}  # 0: a character the training text lacks
    ids = np.array([index[c] for c in train], dtype=np.int64)
    model, optimizer, _ = _plain_model(len(chars) + 1)
    B, T = PLAIN["batch"], PLAIN["steps"]
    per_row = (len(ids) - 1) // B
    rows = torch.from_numpy(ids[:per_row * B + 1])
    X_all, Y_all = rows[:-1].view(B, per_row), rows[1:].view(B, per_row)
    state, done = None, 0
    model.train()
    while done < steps:
        for start in range(0, per_row - T + 1, T):
            state, _ = _plain_step(model, optimizer, X_all[:, start:start + T], Y_all[:, start:start + T], state)
            done += 1
            if done >= steps:
                break
        state = None  # a new pass starts from a zero state
    held = Path(corpus["heldout"]).read_text(encoding="utf-8")
    held_ids = torch.tensor([index.get(c, 0) for c in held], dtype=torch.int64)
    return {"nats_per_char": _score_rows(model, held_ids), "steps": steps}


def _score_rows(model, ids, rows: int = 32, chunk: int = 256) -> float:
    """Mean NLL (nats) of ``ids[1:]``, 32 contiguous rows each from a zero state (as rnnlab evaluates)."""
    import torch
    model.eval()
    n = (len(ids) - 1) // rows
    X = ids[:n * rows].view(rows, n)
    Y = ids[1:n * rows + 1].view(rows, n)
    total, state = 0.0, None
    with torch.no_grad():
        for start in range(0, n, chunk):
            logits, state = model(X[:, start:start + chunk], state)
            total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                       Y[:, start:start + chunk].reshape(-1), reduction="sum").item()
    return total / (n * rows)


# ---- jobs ------------------------------------------------------------------------------------------
def steps_for(name: str, precision: str, budget: float, rates: dict) -> int:
    spec = CANDIDATES[name] if name != "plain" else {"batch_size": PLAIN["batch"], "num_steps": PLAIN["steps"]}
    rate = rates[f"{name}/{precision}"]
    return max(1, round(budget * rate / (spec["batch_size"] * spec["num_steps"])))


def run_job(job: dict) -> dict:
    import torch
    torch.set_num_threads(1)
    corpus = json.loads((WORK / "corpora.json").read_text())[job["corpus"]]
    started = time.perf_counter()
    if job["config"] == "kn5":
        from rnnlab.data.dataset import prepare_text
        from rnnlab.ngram import api
        from rnnlab.ngram.api import encode_for
        dataset = prepare_text(Path(corpus["train"]).read_text(encoding="utf-8"), split=(1.0, 0.0, 0.0))
        model = api.train(dataset, order=5)
        result = model.evaluate(encode_for(model, Path(corpus["heldout"]).read_text(encoding="utf-8")))
        out = {"nats_per_char": math.log(result["perplexity"])}
    elif job["config"] == "plain":
        out = run_plain(corpus, job["steps"])
    else:
        from rnnlab.lm import LanguageModel
        from rnnlab.tasks import lm_run as run
        from rnnlab.training.config import UNLIMITED_EPOCHS, make_config
        spec = dict(CANDIDATES[job["config"]])
        folder = WORK / "runs" / job["id"].replace("/", "_")
        config = make_config(corpus=corpus["train"], split="0.98,0.02,0", max_steps=job["steps"],
                             epochs=UNLIMITED_EPOCHS, early_stop=0, precision=job["precision"],
                             eval_every_steps=max(50, job["steps"] // 8), eval_every=UNLIMITED_EPOCHS,
                             sample_length=0, **spec)
        _, summary = run.train(config, out_dir=folder, overwrite=True, baselines=False)
        held = Path(corpus["heldout"]).read_text(encoding="utf-8")
        last = LanguageModel.load(folder).score(held)
        best = LanguageModel.load(folder / "best").score(held)
        out = {"nats_per_char": math.log(last["perplexity"]), "best_nats_per_char": math.log(best["perplexity"]),
               "val_perplexity": summary["val_perplexity"], "parameters": summary["parameters"],
               "epochs": summary["epochs"], "stopped": summary["stopped"]}
    return {**job, **out, "job_seconds": round(time.perf_counter() - started, 1)}


def jobs(budgets, corpora, configs, precisions, rates) -> list[dict]:
    out = []
    for budget in budgets:
        for corpus in corpora:
            out.append({"id": f"{corpus}/kn5", "corpus": corpus, "config": "kn5", "budget": 0, "precision": "-"})
            for config in configs:
                for precision in (precisions if config != "plain" else ("fp32",)):
                    steps = steps_for(config, precision, budget, rates)
                    out.append({"id": f"{corpus}/{budget:g}s/{config}/{precision}", "corpus": corpus,
                                "config": config, "budget": budget, "precision": precision, "steps": steps})
    return out


def cmd_run(args) -> None:
    RESULTS.mkdir(exist_ok=True)
    corpora = prepare_corpora()
    (WORK / "corpora.json").write_text(json.dumps(corpora, indent=1))
    rates = _load_rates()
    done = {json.loads(line)["id"] for line in (RESULTS / "sweep.jsonl").read_text().splitlines()} \
        if (RESULTS / "sweep.jsonl").exists() else set()
    todo, seen = [], set(done)
    for spec in args.jobs:  # "BUDGET:CORPUS,CORPUS:CONFIG,CONFIG:PRECISION,PRECISION"
        budget, corpus_list, config_list, precision_list = spec.split(":")
        for job in jobs([float(budget)], corpus_list.split(","), config_list.split(","),
                        precision_list.split(","), rates):
            if job["corpus"] in corpora and job["id"] not in seen:
                todo.append(job)
                seen.add(job["id"])
    print(f"{len(todo)} jobs to run, {len(done)} done", flush=True)
    with mp.get_context("spawn").Pool(args.workers, maxtasksperchild=1) as pool:
        for result in pool.imap_unordered(run_job, todo):
            with open(RESULTS / "sweep.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(result) + "\n")
            print(f"{result['id']:55s} {result['nats_per_char']:.4f} nats/char ({result['job_seconds']:.0f} s)",
                  flush=True)


def cmd_report(args) -> None:
    rows = [json.loads(line) for line in (RESULTS / "sweep.jsonl").read_text().splitlines()]
    kn = {r["corpus"]: r["nats_per_char"] for r in rows if r["config"] == "kn5"}
    table: dict = {}
    for r in rows:
        if r["config"] != "kn5":
            table.setdefault((r["budget"], r["config"], r["precision"]), {})[r["corpus"]] = r["nats_per_char"]
    corpora = sorted(kn)
    print("| budget | configuration | precision | " + " | ".join(corpora) + " |")
    print("|---|---|---|" + "---|" * len(corpora))
    print("| - | 5-gram Kneser-Ney | - | " + " | ".join(f"{kn[c]:.3f}" for c in corpora) + " |")
    for (budget, config, precision), values in sorted(table.items()):
        cells = " | ".join(f"{values[c]:.3f}" if c in values else "" for c in corpora)
        print(f"| {budget:g} s | {config} | {precision} | {cells} |")
    if args.figure:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, len(corpora), figsize=(4 * len(corpora), 3.5), squeeze=False)
        for ax, corpus in zip(axes[0], corpora):
            lines: dict = {}
            for (budget, config, precision), values in table.items():
                if corpus in values:
                    lines.setdefault(f"{config} {precision}", []).append((budget, values[corpus]))
            for label, points in sorted(lines.items()):
                points.sort()
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
            ax.axhline(kn[corpus], color="k", linestyle="--", label="5-gram KN")
            ax.set_xscale("log")
            ax.set_title(corpus)
            ax.set_xlabel("CPU seconds (2 threads)")
        axes[0][0].set_ylabel("held-out nats/char")
        axes[0][-1].legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(args.figure, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    probe = sub.add_parser("probe")
    probe.add_argument("--again", action="store_true")
    run = sub.add_parser("run")
    run.add_argument("jobs", nargs="+", help="BUDGET:CORPORA:CONFIGS:PRECISIONS, lists comma-separated")
    run.add_argument("--workers", type=int, default=2)
    report = sub.add_parser("report")
    report.add_argument("--figure", default=None)
    args = parser.parse_args()
    {"probe": cmd_probe, "run": cmd_run, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
