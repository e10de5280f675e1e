"""Bounded load test of ``rnnlab explore``: N requests from C concurrent clients, mixed routes.

Starts ``rnnlab explore DIR --port 0`` in its own process (so that the clients do not
share the server's interpreter), sends ``--requests`` requests from ``--clients``
threads against 127.0.0.1, each with a ``--timeout``, and prints latency percentiles
per route and overall, refusals (429: the concurrent-generation cap) and errors
(anything else that is not 200, timeouts, broken connections)::

    python benchmarks/explore_load.py runs/tm --requests 500 --clients 16

Mix (seeded), by the folder's kind (read from ``/api/info``): a language model 40%
generate (100 tokens, read to the end of the stream), 40% surprisal (a 600-character
text), 10% hidden units (300 characters), 10% info; a classifier 80% classify (a
27-word text), 10% training curves, 10% info; a tagger the same with tag (a 9-word
sentence).
"""
from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict

SENTENCE = "ben kim joined apple in new york last year"
REVIEW = ("dreadful the cat sleeps under the tree every day and night near the river and the film was "
          "long but the ending made up for every minute of it")
MIXES = {"language-model": {"generate": 4, "surprisal": 4, "units": 1, "info": 1},
         "classifier": {"classify": 8, "training": 1, "info": 1},
         "tagger": {"tag": 8, "training": 1, "info": 1}}
TEXT = ("The Time Traveller (for so it will be convenient to speak of him) was expounding a recondite matter "
        "to us. His grey eyes shone and twinkled, and his usually pale face was flushed and animated. ") * 4


def one_request(port: int, kind: str, rng: random.Random, timeout: float) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if kind in ("info", "training"):
            conn.request("GET", f"/api/{kind}")
        else:
            route, body = {
                "generate": ("/api/generate", {"prefix": "The ", "length": 100, "seed": rng.randrange(1000),
                                               "temperature": 0.8}),
                "surprisal": ("/api/surprisal", {"text": TEXT[:600]}),
                "units": ("/api/units", {"text": TEXT[:300]}),
                "classify": ("/api/classify", {"text": REVIEW}),
                "tag": ("/api/tag", {"text": SENTENCE}),
            }[kind]
            conn.request("POST", route, body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()  # to the end: for a generation, the whole stream
        if response.status == 200 and kind == "generate" and b'"type": "done"' not in data:
            return -1  # a stream that ended early
        return response.status
    finally:
        conn.close()


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="a language-model, classifier or tagger folder")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (1 <= args.requests <= 100_000 and 1 <= args.clients <= 256 and args.timeout > 0):
        parser.error("--requests 1..100000, --clients 1..256, --timeout > 0")

    server = subprocess.Popen([sys.executable, "-m", "rnnlab", "-q", "explore", args.dir, "--port", "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if " at http://" not in line:
            print(f"the server did not start: {line!r}", file=sys.stderr)
            return 1
        port = int(line.split(" at ")[1].split()[0].rstrip("/").rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=args.timeout)
        conn.request("GET", "/api/info")
        mix = MIXES[json.loads(conn.getresponse().read())["kind"]]
        conn.close()
        rng = random.Random(args.seed)
        plan = rng.choices(list(mix), weights=list(mix.values()), k=args.requests)
        work = iter(enumerate(plan))
        lock = threading.Lock()
        latencies: dict[str, list[float]] = defaultdict(list)
        outcomes: Counter = Counter()

        def client(index: int) -> None:
            local = random.Random(args.seed * 1000 + index)
            while True:
                with lock:
                    item = next(work, None)
                if item is None:
                    return
                _, kind = item
                start = time.perf_counter()
                try:
                    status = one_request(port, kind, local, args.timeout)
                except (OSError, http.client.HTTPException) as exc:
                    status = type(exc).__name__
                elapsed = time.perf_counter() - start
                with lock:
                    outcomes[(kind, status)] += 1
                    if status == 200:
                        latencies[kind].append(elapsed)

        began = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - began
    finally:
        server.terminate()
        server.wait(timeout=10)

    everything = [x for values in latencies.values() for x in values]
    refused = sum(n for (kind, status), n in outcomes.items() if status == 429)
    errors = sum(n for (kind, status), n in outcomes.items() if status not in (200, 429))
    print(f"{args.requests} requests, {args.clients} concurrent clients, {wall:.1f} s "
          f"({args.requests / wall:.1f} requests/s)")
    print(f"{'route':<10} {'ok':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind in mix:
        values = latencies.get(kind, [])
        if values:
            print(f"{kind:<10} {len(values):>5} {1000 * statistics.median(values):>8.1f} "
                  f"{1000 * percentile(values, 99):>8.1f} {1000 * max(values):>8.1f}")
    if everything:
        print(f"{'all':<10} {len(everything):>5} {1000 * statistics.median(everything):>8.1f} "
              f"{1000 * percentile(everything, 99):>8.1f} {1000 * max(everything):>8.1f}")
    print(f"refused (429, concurrent-generation cap): {refused}; errors: {errors}")
    for (kind, status), n in sorted(outcomes.items(), key=str):
        if status not in (200, 429):
            print(f"  {kind}: {status} x {n}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
