"""``rnnlab explore DIR``: serve the explorer page for one trained language model (see rnnlab.explore)."""
from __future__ import annotations

import sys

from rnnlab.errors import UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def cmd_explore(args) -> int:
    from rnnlab.explore import Explorer, make_server, serve  # lazy: keeps rnnlab --help from loading rnnlab.explore

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be an integer from 1 to 65535 (0: any free port), got {args.port}")
    if not args.host.strip():
        raise UsageError("--host is empty; give an address such as 127.0.0.1")
    explorer = Explorer(args.dir, ngram_folder=args.ngram, data_dir=args.data_dir, corpus=args.corpus)
    server = make_server(explorer, args.host, args.port)
    if args.host not in LOOPBACK:
        print(f"warning: --host {args.host}: the explorer is reachable from other machines on this network; it has "
              "no authentication (anyone who can reach it can use the model)", file=sys.stderr)
    info = explorer.info()
    if explorer.validation is None:
        print(f"note: no validation text ({explorer.validation_problem})", file=sys.stderr)
    print(f"serving {args.dir} ({info['model'].get('model', '?')}, {info['parameters']:,} parameters) at "
          f"{server.url}  (Ctrl-C stops)", flush=True)
    try:
        serve(server)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the way a server is meant to end
        print("stopped", file=sys.stderr)
    return 0


def add_parser(commands) -> None:
    """Register ``explore`` on the main parser's subparsers."""
    ex = commands.add_parser("explore", help="a local web page to look inside a trained language model",
                             description="Serve one page (generation, surprisal, hidden units, training curves) "
                                         "for a model folder of rnnlab train. Opens nothing by itself; prints the "
                                         "URL. Ctrl-C stops it.")
    ex.add_argument("dir", metavar="DIR", help="a language-model folder (rnnlab train --out)")
    ex.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0: any free port)")
    ex.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1, this machine only; others print a warning)")
    ex.add_argument("--ngram", default=None, metavar="NGRAM_DIR",
                    help="an rnnlab ngram folder with the same tokens: colour where the RNN beats it")
    ex.add_argument("--data-dir", default=None, help="folder holding the training corpus, for the validation text")
    ex.add_argument("--corpus", default=None, metavar="PATH",
                    help="where the training corpus is now (a moved copy; it must have the recorded SHA-1)")
    ex.set_defaults(handler=cmd_explore)
