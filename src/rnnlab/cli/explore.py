"""``rnnlab explore DIR``: serve the explorer page for one trained language model, classifier or
tagger (see rnnlab.explore)."""
from __future__ import annotations

import sys

from rnnlab.errors import UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def cmd_explore(args) -> int:
    from rnnlab.explore import make_server, open_explorer, serve  # lazy: keeps rnnlab --help from loading rnnlab.explore

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be an integer from 1 to 65535 (0: any free port), got {args.port}")
    if not args.host.strip():
        raise UsageError("--host is empty; give an address such as 127.0.0.1")
    explorer = open_explorer(args.dir, ngram_folder=args.ngram, data_dir=args.data_dir, corpus=args.corpus)
    server = make_server(explorer, args.host, args.port)
    if args.host not in LOOPBACK:
        print(f"warning: --host {args.host}: the explorer is reachable from other machines on this network; it has "
              "no authentication (anyone who can reach it can use the model)", file=sys.stderr)
    info = explorer.info()
    if info.get("validation") is False:
        print(f"note: no validation text ({info['validation_problem']})", file=sys.stderr)
    print(f"serving {args.dir} ({_described(info)}, {info['parameters']:,} parameters) at "
          f"{server.url}  (Ctrl-C stops)", flush=True)
    try:
        serve(server)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the way a server is meant to end
        print("stopped", file=sys.stderr)
    return 0


def _described(info: dict) -> str:
    """What the serving line says of the model: ``lstm`` (a language model),
    ``classifier: bidirectional lstm, 2 labels``, ``tagger: bidirectional lstm, 7 tags``."""
    model = info["model"]
    if info["kind"] == "classifier":
        cell = f"{'bidirectional ' if model.get('bidirectional') else ''}{model.get('cell', '?')}"
        return f"classifier: {cell}, {len(info['labels'])} labels"
    if info["kind"] == "tagger":
        return f"tagger: bidirectional {model.get('cell', 'lstm')}{' + CRF' if model.get('crf') else ''}, " \
               f"{len(info['tags'])} tags"
    return model.get("model", "?")


def add_parser(commands) -> None:
    """Register ``explore`` on the main parser's subparsers."""
    ex = commands.add_parser("explore", help="a local web page to look inside a trained model",
                             description="Serve one page for a model folder: generation, surprisal, hidden "
                                         "units and training curves for a language model of rnnlab train; label "
                                         "probabilities for a classifier of rnnlab classify train; tags and "
                                         "entities for a tagger of rnnlab tag train. Opens nothing by itself; "
                                         "prints the URL. Ctrl-C stops it.")
    ex.add_argument("dir", metavar="DIR",
                    help="a language-model, classifier or tagger folder (the --out of rnnlab train, classify "
                         "train or tag train)")
    ex.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0: any free port)")
    ex.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1, this machine only; others print a warning)")
    ex.add_argument("--ngram", default=None, metavar="NGRAM_DIR",
                    help="an rnnlab ngram folder with the same tokens: colour where the RNN beats it "
                         "(language models only)")
    ex.add_argument("--data-dir", default=None,
                    help="folder holding the training corpus, for the validation text (language models only)")
    ex.add_argument("--corpus", default=None, metavar="PATH",
                    help="where the training corpus is now (a moved copy; it must have the recorded SHA-1; "
                         "language models only)")
    ex.set_defaults(handler=cmd_explore)
