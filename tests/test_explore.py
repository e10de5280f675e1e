"""rnnlab explore: the JSON API, its refusals, its limits, and the analysis behind the panels.

One tiny LSTM (and a 3-gram with the same tokens) trained once for the module; servers run
in-process on a free port. Raw sockets send what urllib would refuse to send.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from rnnlab.explore import Explorer, Limits, analysis, make_server

TEXT = ('He said "the quick brown fox (a red one) jumps over the lazy dog" and left.\n' * 40)
TINY = ["--model", "lstm", "--hidden", "12", "--layers", "1", "--embed", "6", "--batch-size", "4", "--num-steps",
        "16", "--sample-length", "0", "--max-steps", "6", "--eval-every-steps", "3", "--device", "cpu",
        "--precision", "fp32", "-q"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from rnnlab.cli import main

    root = tmp_path_factory.mktemp("explore")
    (root / "fox.txt").write_text(TEXT)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(open(os.devnull, "w")):
            assert main(["-q", "train", "--corpus", "fox.txt", *TINY[:-1], "--out", "lm"]) == 0
            assert main(["-q", "ngram", "train", "--corpus", "fox.txt", "--token", "char", "--mode", "raw",
                         "--order", "3", "--out", "ng"]) == 0
            assert main(["-q", "ngram", "train", "--corpus", "fox.txt", "--out", "ng-word"]) == 0
    finally:
        os.chdir(cwd)
    return root


@contextlib.contextmanager
def running(explorer: Explorer):
    server = make_server(explorer, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        explorer.stopping.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def explorer(folders):
    return Explorer(folders / "lm", ngram_folder=folders / "ng", data_dir=folders,
                    limits=Limits(read_seconds=1.0, socket_timeout=2.0, generations=2))


@pytest.fixture(scope="module")
def server(explorer):
    with running(explorer) as server:
        yield server


def request(server, method, route, body=None, headers=None, raw_body: bytes | None = None):
    """(status, decoded JSON or text, headers) of one request over http.client."""
    port = server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = raw_body if raw_body is not None else (None if body is None else json.dumps(body).encode())
    sent = {"Content-Type": "application/json"} if data is not None else {}
    sent.update(headers or {})
    conn.request(method, route, body=data, headers=sent)
    response = conn.getresponse()
    text = response.read().decode("utf-8")
    conn.close()
    kind = response.getheader("Content-Type", "")
    return response.status, json.loads(text) if kind.startswith("application/json") else text, response


def raw(server, data: bytes, read_timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh socket; everything the server answers until it closes."""
    with socket.create_connection(server.server_address[:2], timeout=read_timeout) as sock:
        sock.sendall(data)
        chunks = []
        with contextlib.suppress(socket.timeout, ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def events(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


# ---- what the routes give ----------------------------------------------------------------
def test_page_and_static_files(server):
    status, page, response = request(server, "GET", "/")
    assert status == 200 and "<title>rnnlab explore</title>" in page
    assert "default-src 'self'" in response.getheader("Content-Security-Policy")
    for route in ("/static/app.js", "/static/style.css"):
        status, text, _ = request(server, "GET", route)
        assert status == 200 and len(text) > 100
    assert "://" not in request(server, "GET", "/static/app.js")[1].replace("http://www.w3.org/2000/svg", "")


def test_info(server):
    status, info, _ = request(server, "GET", "/api/info")
    assert status == 200
    assert info["model"]["model"] == "lstm" and info["token"] == "char" and info["validation"] is True
    assert info["ngram"].startswith("3-gram kn") and set(info["features"]) == set(analysis.FEATURES)


def test_generation_streams_the_tokens_generate_gives(server, explorer):
    for options in ({"greedy": True}, {"seed": 7, "temperature": 0.9, "top_k": 5}, {"seed": 3, "top_p": 0.8}):
        status, text, response = request(server, "POST", "/api/generate", {"prefix": "He said ", "length": 40, **options})
        assert status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
        got = events(text)
        assert got[0] == {"type": "start", "prefix": "He said "} and got[-1]["type"] == "done"
        tokens = [e for e in got if e["type"] == "token"]
        assert len(tokens) == 40 and all(0 < e["p"] <= 1 for e in tokens)
        streamed = got[0]["prefix"] + "".join(e["piece"] for e in tokens)
        assert streamed == explorer.lm.generate("He said ", 40, **options)


def test_token_probabilities_are_the_models(server, explorer):
    _, text, _ = request(server, "POST", "/api/generate", {"prefix": "He", "length": 5, "greedy": True})
    tokens = [e for e in events(text) if e["type"] == "token"]
    lm = explorer.lm
    ids = lm.prefix_ids("He")
    with torch.no_grad():
        for event in tokens:
            logits, _ = lm.model(torch.tensor([ids]), lm.model.begin_state(1))
            z = logits[0, -1].double()
            z[0] = -math.inf
            probs = torch.softmax(z, 0)
            chosen = lm.vocab[event["piece"]]
            assert event["p"] == pytest.approx(float(probs[chosen]), abs=2e-5)
            assert chosen == int(probs.argmax())
            ids.append(chosen)


def test_surprisal_matches_evaluation_and_ngram(server, explorer, folders):
    from rnnlab import ngram
    from rnnlab.evaluation import evaluate

    text = 'the lazy dog said "no" (twice).\nthe end'
    status, data, _ = request(server, "POST", "/api/surprisal", {"text": text})
    assert status == 200 and "".join(data["pieces"]) == text and data["bits"][0] is None
    ids = explorer.lm.encode(text)
    reference = evaluate(explorer.lm.model, ids, rows=1, num_steps=256)
    assert data["summary"]["total_bits"] == pytest.approx(reference["nll_nats"] / math.log(2), rel=1e-4)
    assert data["summary"]["perplexity"] == pytest.approx(reference["perplexity"], rel=1e-4)
    assert data["summary"]["bits_per_char"] == pytest.approx(data["summary"]["total_bits"] / (len(text) - 1))
    count = ngram.load(folders / "ng")
    expected = -count.log_probs(ngram.encode_for(count, text)) / math.log(2)
    assert data["ngram"]["bits"][1:] == pytest.approx(expected.tolist(), abs=1e-3)
    gains = [g for g in data["ngram"]["gain"][1:]]
    assert gains == pytest.approx([n - r for n, r in zip(data["ngram"]["bits"][1:], data["bits"][1:])], abs=2e-4)


def test_validation_source(server, explorer):
    status, data, _ = request(server, "POST", "/api/surprisal", {"source": "validation"})
    assert status == 200 and data["source"] == "validation"
    assert len(data["pieces"]) == len(explorer.validation) == data["summary"]["tokens"] + 1


def test_units_ranking_and_values(server, explorer):
    text = 'a "quoted (part)" here\nand "another" one'
    status, data, _ = request(server, "POST", "/api/units", {"text": text})
    assert status == 200 and data["units"] == 2 * 12  # LSTM: 12 hidden units and 12 cells
    rs = [abs(e["r"]) for e in data["ranking"] if e["r"] is not None]
    assert rs == sorted(rs, reverse=True) and data["unit"] == data["ranking"][0]["unit"]
    assert len(data["values"]) == len(data["pieces"]) == len(text)
    cell = next(e["unit"] for e in data["ranking"] if "cell" in e["name"])
    status, picked, _ = request(server, "POST", "/api/units", {"text": text, "unit": cell, "feature": "inside quotes"})
    assert status == 200 and picked["unit"] == cell and "cell" in picked["name"]
    assert all(e["feature"] == "inside quotes" for e in picked["ranking"])
    states = analysis.trace(explorer.lm.model, explorer.lm.encode(text)).states
    assert picked["values"] == pytest.approx(states[:, cell].tolist(), abs=1e-4)


def test_training_records(server, folders):
    status, data, _ = request(server, "GET", "/api/training")
    lines = (folders / "lm" / "metrics.jsonl").read_text().splitlines()
    assert status == 200 and len(data["records"]) == len(lines) == 2
    assert data["records"][-1]["step"] == 6 and data["stopped"] == "max_steps"
    assert {"5-gram Kneser-Ney", "unigram add-one"} <= set(data["baselines"]) and data["train_config"]["hidden_size"] == 12


def test_training_follows_a_run_still_writing(folders, tmp_path):
    import shutil
    shutil.copytree(folders / "lm", tmp_path / "lm")
    live = Explorer(tmp_path / "lm", data_dir=folders)
    with running(live) as server:
        first = request(server, "GET", "/api/training")[1]
        assert len(first["records"]) == 2 and first["seconds_since_write"] < 600
        with open(tmp_path / "lm" / "metrics.jsonl", "a") as f:
            f.write('{"step": 9, "val_perplexity": 3.5}\n{"step": 12, "val_perpl')  # the second still being written
        records = request(server, "GET", "/api/training")[1]["records"]
        assert [r["step"] for r in records] == [3, 6, 9]


# ---- every model kind through the step path ------------------------------------------------
@pytest.mark.parametrize("kind", ["rnn-scratch", "rnn", "gru", "lstm", "mingru", "minlstm"])
def test_trace_follows_forward_for_every_kind(kind):
    import rnnlab

    options = {"hidden_size": 8} if kind == "rnn-scratch" else {"hidden_size": 8, "num_layers": 2}
    model = rnnlab.build_model(kind, 11, seed=0, **options).eval()
    ids = np.array([1, 4, 2, 9, 3, 3, 7, 1, 10, 5])
    run = analysis.trace(model, ids)
    with torch.no_grad():
        logits, state = model(torch.tensor([ids.tolist()]), model.begin_state(1))
    expected = -torch.log_softmax(logits[0, :-1].double(), 1).gather(1, torch.tensor(ids[1:]).view(-1, 1)).view(-1)
    assert run.bits == pytest.approx((expected / math.log(2)).tolist(), abs=1e-4)
    assert analysis.surprisal_bits(model, ids, chunk=3) == pytest.approx(run.bits.tolist(), abs=1e-4)
    flat = torch.cat([p.reshape(-1) for p in (state if isinstance(state, tuple) else (state,))]).numpy()
    assert run.states.shape == (len(ids), len(run.units)) == (len(ids), flat.size)
    assert run.states[-1] == pytest.approx(flat, abs=1e-5)


def test_text_features_and_correlations():
    shown = list('a "b (c) d" e\nfg')
    f = analysis.text_features(shown)
    assert f["inside quotes"].tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert f["inside brackets"].tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert f["position in line"].tolist()[-3:] == [0, 1, 2]
    assert f["vowel"][0] == 1 and f["consonant"][3] == 1 and f["consonant"][2] == 0 and f["after a space"][1] == 1
    states = np.stack([f["inside quotes"] * 2 - 1, np.ones(16), -f["position in line"]], axis=1)
    R = analysis.correlations(states, f)
    assert R[0, 0] == pytest.approx(1.0) and np.isnan(R[1]).all() and R[2, 2] == pytest.approx(-1.0)
    ranking = analysis.rank_units(R, ["a", "b", "c"], list(f))
    assert [e["name"] for e in ranking] == ["a", "c", "b"] and ranking[-1]["r"] is None


def test_metrics_of_a_run_still_writing(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\nnot json\n[1]\n{"step": 2}\n{"step": 3, "val')
    records, cut = analysis.read_metrics(path)
    assert [r["step"] for r in records] == [1, 2] and not cut
    records, cut = analysis.read_metrics(path, max_bytes=30)
    assert cut and [r["step"] for r in records] == [2]
    assert analysis.read_metrics(tmp_path / "missing.jsonl") == ([], False)


# ---- refusals --------------------------------------------------------------------------
GEN = "/api/generate"
BAD_JSON = [
    # (route, body, status, fragment of the error)
    (GEN, {"length": -1}, 400, "length must be an integer from 1 to 2000"),
    (GEN, {"length": 10**9}, 400, "length must be an integer from 1 to 2000"),
    (GEN, {"length": 0}, 400, "length must be an integer from 1"),
    (GEN, {"length": 1.5}, 400, "length must be an integer"),
    (GEN, {"length": True}, 400, "length must be an integer"),
    (GEN, {"length": "10"}, 400, "length must be an integer"),
    (GEN, {"temperature": 0}, 400, "temperature must be in (0, 100]"),
    (GEN, {"temperature": -1}, 400, "temperature must be in (0, 100]"),
    (GEN, {"temperature": 1e308}, 400, "temperature must be in (0, 100]"),
    (GEN, {"top_p": 0}, 400, "top_p must be in (0, 1]"),
    (GEN, {"top_p": 1.5}, 400, "top_p must be in (0, 1]"),
    (GEN, {"top_k": -1}, 400, "top_k must be an integer from 0"),
    (GEN, {"top_k": 10**6}, 400, "top_k must be an integer from 0"),
    (GEN, {"seed": -1}, 400, "seed must be an integer from 0"),
    (GEN, {"seed": 2**64}, 400, "seed must be an integer from 0"),
    (GEN, {"greedy": "yes"}, 400, "greedy must be true or false"),
    (GEN, {"prefix": 123}, 400, "prefix must be a string"),
    (GEN, {"prefix": ""}, 400, "has no char tokens"),
    (GEN, {"prefix": "x" * 3000}, 400, "prefix is 3,000 characters; at most 2,000"),
    (GEN, {"lenght": 10}, 400, "unknown parameter 'lenght'"),
    (GEN, [1, 2], 400, "must be a JSON object"),
    (GEN, "text", 400, "must be a JSON object"),
    ("/api/surprisal", {"text": "x" * 30000}, 400, "at most 20,000"),
    ("/api/surprisal", {"text": "a"}, 422, "at least 2 are needed"),
    ("/api/surprisal", {}, 400, "text must be a string"),
    ("/api/surprisal", {"source": "/etc/passwd"}, 400, "source must be 'text' or 'validation'"),
    ("/api/surprisal", {"text": "ab", "path": "../config.json"}, 400, "unknown parameter 'path'"),
    ("/api/units", {"text": "abc", "unit": -1}, 400, "unit must be an integer from 0 to 23"),
    ("/api/units", {"text": "abc", "unit": 10**9}, 400, "unit must be an integer from 0 to 23"),
    ("/api/units", {"text": "abc", "feature": "bogus"}, 400, "unknown feature 'bogus'"),
    ("/api/units", {"text": "x" * 6000}, 400, "at most 5,000"),
]


@pytest.mark.parametrize("route,body,status,fragment", BAD_JSON, ids=[f"{r}-{i}" for i, (r, *_) in enumerate(BAD_JSON)])
def test_bad_parameters_are_json_4xx(server, route, body, status, fragment):
    got, data, _ = request(server, "POST", route, body)
    assert got == status and data["status"] == status and fragment in data["error"], data


def host(server):
    return f"127.0.0.1:{server.server_address[1]}"


BAD_HTTP = [
    # (name, raw request with {host}, status)
    ("unknown-route", "GET /nope HTTP/1.1\r\nHost: {host}\r\n\r\n", 404),
    ("traversal", "GET /../../etc/passwd HTTP/1.1\r\nHost: {host}\r\n\r\n", 404),
    ("static-traversal", "GET /static/../session.py HTTP/1.1\r\nHost: {host}\r\n\r\n", 404),
    ("encoded-traversal", "GET /static/%2e%2e/%2e%2e/checkpoint.py HTTP/1.1\r\nHost: {host}\r\n\r\n", 404),
    ("absolute-target", "GET http://evil.example/ HTTP/1.1\r\nHost: {host}\r\n\r\n", 400),
    ("wrong-host", "GET /api/info HTTP/1.1\r\nHost: evil.example:80\r\n\r\n", 403),
    ("host-without-port", "GET /api/info HTTP/1.1\r\nHost: localhost\r\n\r\n", 403),
    ("no-host", "GET /api/info HTTP/1.0\r\n\r\n", 400),
    ("foreign-origin", "POST /api/surprisal HTTP/1.1\r\nHost: {host}\r\nOrigin: http://evil.example\r\n"
                       "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}", 403),
    ("null-origin", "POST /api/surprisal HTTP/1.1\r\nHost: {host}\r\nOrigin: null\r\n"
                    "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}", 403),
    ("no-length", "POST /api/surprisal HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\r\n", 411),
    ("chunked", "POST /api/surprisal HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n", 411),
    ("huge-length", "POST /api/surprisal HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                    "Content-Length: 1000000000\r\n\r\n", 413),
    ("negative-length", "POST /api/surprisal HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                        "Content-Length: -5\r\n\r\n", 400),
    ("text-length", "POST /api/surprisal HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                    "Content-Length: abc\r\n\r\n", 400),
    ("form-body", "POST /api/surprisal HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n"
                  "Content-Length: 2\r\n\r\n{{}}", 415),
    ("invalid-json", "POST /api/surprisal HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     "Content-Length: 4\r\n\r\n{{bad", 400),
    ("nan-json", "POST /api/generate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 "Content-Length: 19\r\n\r\n{{\"temperature\":NaN}}", 400),
    ("infinity-json", "POST /api/generate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                      "Content-Length: 18\r\n\r\n{{\"top_p\":Infinity}}", 400),
    ("get-on-post-route", "GET /api/generate HTTP/1.1\r\nHost: {host}\r\n\r\n", 405),
    ("post-on-get-route", "POST /api/info HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n", 405),
    ("put", "PUT /api/info HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n", 405),
    ("delete", "DELETE / HTTP/1.1\r\nHost: {host}\r\n\r\n", 405),
    ("unknown-method", "BREW /api/info HTTP/1.1\r\nHost: {host}\r\n\r\n", 501),
    ("garbage-request-line", "hello\r\n\r\n", 400),
    ("bad-version", "GET / HTTP/9.9\r\nHost: {host}\r\n\r\n", 505),
]


@pytest.mark.parametrize("name,text,status", BAD_HTTP, ids=[row[0] for row in BAD_HTTP])
def test_bad_http_is_json_4xx(server, name, text, status):
    answer = raw(server, text.format(host=host(server)).encode())
    assert status_of(answer) == status, answer[:300]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"application/json" in head and b"Traceback" not in answer
    assert json.loads(body)["status"] == status


def test_oversized_bodies_and_lines(server):
    long_line = b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: " + host(server).encode() + b"\r\n\r\n"
    assert status_of(raw(server, long_line)) == 414
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(150))
    assert status_of(raw(server, b"GET / HTTP/1.1\r\nHost: " + host(server).encode() + b"\r\n" + many + b"\r\n")) == 431
    big = json.dumps({"text": "a" * 70000}).encode()
    status, data, _ = request(server, "POST", "/api/surprisal", raw_body=big)
    assert status == 413 and "at most 65,536" in data["error"]
    nested = b"[" * 30000 + b"]" * 30000
    status, data, _ = request(server, "POST", "/api/surprisal", raw_body=nested)
    assert status == 400 and "not valid JSON" in data["error"]
    status, data, _ = request(server, "POST", "/api/surprisal", raw_body=b"\xff\xfe{}")
    assert status == 400 and "not UTF-8" in data["error"]


def test_query_strings_name_no_file(server):
    status, text, _ = request(server, "GET", "/static/app.js?path=/etc/passwd")
    assert status == 200 and "root:" not in text and "rnnlab explore" in text


def test_slow_and_truncated_clients_are_cut(server):
    start = time.monotonic()
    with socket.create_connection(server.server_address[:2], timeout=5) as sock:
        sock.sendall(b"GET /api/info HTTP/1.1\r\nHost: ")  # and then nothing more
        data = sock.recv(100)
    assert data == b"" and time.monotonic() - start < 4  # read_seconds = 1 in this server
    start = time.monotonic()
    with socket.create_connection(server.server_address[:2], timeout=5) as sock:  # a byte now and then
        sock.sendall(b"POST /api/surprisal HTTP/1.1\r\n")
        with contextlib.suppress(OSError):
            for _ in range(8):
                time.sleep(0.3)
                sock.sendall(b"X")
        with contextlib.suppress(OSError):
            data = sock.recv(100)
    assert time.monotonic() - start < 5
    answer = raw(server, ("POST /api/surprisal HTTP/1.1\r\nHost: " + host(server) + "\r\nContent-Type: application/json"
                          "\r\nContent-Length: 100\r\n\r\n{\"text\": ").encode())
    assert answer == b"" or status_of(answer) == 400
    assert request(server, "GET", "/api/info")[0] == 200  # still serving


def free_generations(server, wait: float = 5.0) -> int:
    """Free generation slots once the server has seen the closed streams (it notices on its next write)."""
    deadline = time.monotonic() + wait
    while server.explorer.generations._value < server.explorer.limits.generations and time.monotonic() < deadline:
        time.sleep(0.02)
    return server.explorer.generations._value


def test_stop_button_frees_the_generation(server):
    """Close the stream after a few events (what the stop button does): the slot is released."""
    for _ in range(3):  # more than Limits.generations = 2: a slot leaked would show
        sock = socket.create_connection(server.server_address[:2], timeout=5)
        body = json.dumps({"prefix": "He", "length": 2000, "seed": 1}).encode()
        sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: " + host(server).encode() +
                     b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        assert b"text/event-stream" in sock.recv(4096)
        sock.close()
        assert free_generations(server) == 2


def test_concurrent_generations_are_capped_and_states_not_shared(server, explorer):
    """Generations beyond the cap get 429; the ones that run give exactly the single-user text."""
    results, statuses = {}, []
    assert free_generations(server) == 2

    def run(i):
        status, text, _ = request(server, "POST", GEN, {"prefix": "the ", "length": 600, "seed": i})
        statuses.append(status)
        if status == 200:
            results[i] = "".join(e.get("piece", e.get("prefix", "")) for e in events(text) if e["type"] in ("start", "token"))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(200) >= 2 and set(statuses) <= {200, 429}
    for i, text in results.items():
        assert text == explorer.lm.generate("the ", 600, seed=i)


def test_concurrent_scoring_gives_the_single_user_numbers(server):
    texts = [f'the {"quick " * i}brown "fox" (jumps)' for i in range(1, 9)]
    alone = [request(server, "POST", "/api/surprisal", {"text": t})[1]["bits"] for t in texts]
    together = [None] * len(texts)

    def run(i):
        together[i] = request(server, "POST", "/api/surprisal", {"text": texts[i]})[1]["bits"]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone


def test_connection_cap(folders, explorer):
    small = Explorer.__new__(Explorer)
    small.__dict__.update(explorer.__dict__)
    small.limits = Limits(connections=2, read_seconds=3.0)
    with running(small) as server:
        idle = [socket.create_connection(server.server_address[:2]) for _ in range(2)]
        time.sleep(0.2)
        try:
            answer = raw(server, f"GET /api/info HTTP/1.1\r\nHost: {host(server)}\r\n\r\n".encode())
            assert status_of(answer) == 503 and b"too many open connections" in answer
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.3)
        assert request(server, "GET", "/api/info")[0] == 200


def test_ngram_with_other_tokens_is_refused(folders):
    from rnnlab.errors import UsageError
    with pytest.raises(UsageError, match="reads word tokens in d2l mode, the language model char tokens in raw"):
        Explorer(folders / "lm", ngram_folder=folders / "ng-word")


def test_ngram_with_another_bpe_tokenizer_is_refused(folders, tmp_path, monkeypatch):
    """Same token kind, another tokenizer (learnt with another size): the tokens do not line up."""
    from rnnlab.cli import main
    from rnnlab.errors import UsageError
    monkeypatch.chdir(folders)
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        assert main(["-q", "train", "--corpus", "fox.txt", *TINY[:-1], "--token", "bpe", "--vocab-size", "260",
                     "--out", str(tmp_path / "lm-bpe")]) == 0
        for size in (260, 270):
            assert main(["-q", "ngram", "train", "--corpus", "fox.txt", "--token", "bpe", "--mode", "raw",
                         "--vocab-size", str(size), "--order", "3", "--out", str(tmp_path / f"ng-{size}")]) == 0
    assert Explorer(tmp_path / "lm-bpe", ngram_folder=tmp_path / "ng-260").ngram is not None  # the same tokenizer
    with pytest.raises(UsageError, match="its bpe tokenizer is not the language model's"):
        Explorer(tmp_path / "lm-bpe", ngram_folder=tmp_path / "ng-270")


def test_a_model_without_its_corpus_still_serves(folders, monkeypatch):
    """The corpus outside the folders the user named (rnnlab.data.corpus.allowed_roots) is not read."""
    monkeypatch.delenv("RNNLAB_DATA", raising=False)
    lonely = Explorer(folders / "lm")
    assert "--data-dir" in lonely.validation_problem or "--corpus" in lonely.validation_problem
    assert lonely.validation is None and lonely.validation_problem and lonely.baselines == {}
    with running(lonely) as server:
        status, data, _ = request(server, "POST", "/api/surprisal", {"source": "validation"})
        assert status == 422 and "validation text is not available" in data["error"]
        assert request(server, "POST", "/api/surprisal", {"text": "the dog"})[0] == 200


# ---- the command ------------------------------------------------------------------------
class ExploreProcess:
    """``rnnlab explore ARGS --port 0`` in its own process: ``line`` (the first line it
    printed), ``host`` and ``port`` of its URL; leaving the ``with`` block sends Ctrl-C
    (SIGINT) and waits, then ``returncode`` and ``stderr`` say how it stopped."""

    def __init__(self, *args: str) -> None:
        # SIGINT at its default: a shell without job control starts background jobs (this test
        # run among them) with SIGINT ignored, and the server would inherit that and never stop.
        self.proc = subprocess.Popen([sys.executable, "-m", "rnnlab", "explore", *args, "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def __enter__(self) -> "ExploreProcess":
        self.line = self.proc.stdout.readline()
        assert " at http://" in self.line, self.line
        self.host, port = self.line.split(" at http://")[1].split()[0].strip("/").rsplit(":", 1)
        self.port = int(port)
        return self

    def request(self, method: str, route: str, body: dict | None = None) -> tuple[int, dict]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, route, body=None if body is None else json.dumps(body),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def __exit__(self, *exc) -> None:
        try:
            self.proc.send_signal(signal.SIGINT)
            _, self.stderr = self.proc.communicate(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.returncode = self.proc.returncode


def test_cli_serves_prints_the_url_and_stops_on_ctrl_c(folders):
    with ExploreProcess(str(folders / "lm"), "--host", "127.0.0.2", "--data-dir", str(folders)) as served:
        assert "serving" in served.line and served.host == "127.0.0.2"
        assert served.request("GET", "/api/info")[0] == 200
    assert served.returncode == 0 and "warning: --host 127.0.0.2" in served.stderr and "stopped" in served.stderr
    assert "Traceback" not in served.stderr


def test_port_in_use_is_one_line(folders, capsys):
    from rnnlab.cli import main
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code = main(["-q", "explore", str(folders / "lm"), "--port", str(taken.getsockname()[1])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot listen on 127.0.0.1" in err[0], err


def test_a_named_corpus_is_never_downloaded_at_start_up(tmp_path, monkeypatch):
    from rnnlab.explore.session import _remote_corpus_missing

    monkeypatch.delenv("RNNLAB_DATA", raising=False)
    assert "does not download it" in _remote_corpus_missing("timemachine", None, tmp_path)
    assert _remote_corpus_missing("fox.txt", None, None) is None  # a file: loaded (or refused) as given
    (tmp_path / "timemachine.txt").write_text("a copy")  # found there: loaded, and its SHA-1 checked then
    assert _remote_corpus_missing("timemachine", None, tmp_path) is None
