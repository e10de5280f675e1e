"""HTTP side of ``rnnlab explore``: routing, request limits, JSON errors, server-sent events.

Standard library only (:class:`http.server.ThreadingHTTPServer`, one thread per
connection). Routes (JSON bodies, ``Content-Type: application/json``)::

    GET  /                  the page (static/index.html); /static/app.js, /static/style.css
    GET  /api/info          the model, its vocabulary, the limits, what is available
    GET  /api/training      metrics.jsonl records, the charts to draw, the training config, baselines
    POST /api/surprisal     {"text": str} or {"source": "validation"} -> bits per token
    POST /api/units         {"text"|"source", "unit": int?, "feature": str?} -> ranking, values
    POST /api/generate      {"prefix", "length", "greedy", "temperature", "top_k", "top_p", "seed"}
                            -> text/event-stream: "data: {json}" events start, token..., done
    POST /api/classify      {"text": str} -> tokens, label, probabilities (a classifier folder)
    POST /api/tag           {"text": str} -> tokens, tags, entity spans (a tagger folder)

A language-model folder gets every route but the last two; a classifier or tagger folder
the page, ``/api/info``, ``/api/training`` and its own route (``explorer.routes``); the
others answer 404.

Every refusal is a JSON object ``{"error": message, "status": code}`` with a 4xx code
(5xx only for a bug, logged here, never sent as a traceback). Defences: the Host
header must name this server (DNS rebinding), a browser ``Origin`` must too (another
site's page cannot post here), POST bodies must be JSON of bounded size, request
parameters are bounded (:class:`~rnnlab.explore.session.Limits`), open connections
and concurrent generations are capped, and a client that does not finish sending its
request in ``read_seconds`` is disconnected. The static files are read once at
start-up; no request names a file.
"""
from __future__ import annotations

import json
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import urlsplit

from rnnlab.errors import RnnlabError, UsageError
from rnnlab.explore.session import Explorer  # or a task explorer of rnnlab.explore.labelling: the same interface

STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/static/style.css": ("style.css", "text/css; charset=utf-8")}
GET_ROUTES = set(STATIC) | {"/api/info", "/api/training"}
POST_ROUTES = {"/api/surprisal", "/api/units", "/api/generate", "/api/classify", "/api/tag"}

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class RequestError(Exception):
    """A refusal: HTTP ``status`` and a one-line message for the JSON body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def load_static() -> dict[str, tuple[bytes, str]]:
    """Route -> (bytes, content type) of the page's files, read from the package once."""
    folder = resources.files("rnnlab.explore") / "static"
    return {route: ((folder / name).read_bytes(), kind) for route, (name, kind) in STATIC.items()}


def allowed_hosts(host: str, port: int) -> set[str]:
    """The Host header values this server answers: ``name:port`` for localhost and the bound
    address; for a wildcard bind (``0.0.0.0``, ``::``) also this machine's name and addresses."""
    names = {"localhost", "127.0.0.1", "[::1]", host if ":" not in host else f"[{host}]"}
    if host in ("0.0.0.0", "::", ""):
        hostname = socket.gethostname()
        names |= {hostname, socket.getfqdn()}
        try:
            for *_, sockaddr in socket.getaddrinfo(hostname, None):
                address = sockaddr[0]
                names.add(f"[{address}]" if ":" in address else address)
        except OSError:
            pass
    return {f"{name.lower()}:{port}" for name in names if name}


class ExploreServer(ThreadingHTTPServer):
    """The HTTP server of one :class:`Explorer`; see the module docstring."""

    daemon_threads = True  # open event streams must not keep the process alive after Ctrl-C
    # The listen backlog: socketserver's default of 5 dropped connections of 16 clients arriving
    # together, which then waited a second for the TCP retry (max 1,010 ms for /api/info).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], explorer: Explorer) -> None:
        self.explorer = explorer
        self.limits = explorer.limits
        self.static = load_static()
        self.connections = threading.BoundedSemaphore(self.limits.connections)
        handler = type("Handler", (Handler,), {"timeout": self.limits.socket_timeout})
        super().__init__(address, handler)
        self.hosts = allowed_hosts(address[0], self.server_address[1])

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
        return f"http://{shown if ':' not in shown or shown.startswith('[') else f'[{shown}]'}:{port}/"

    def process_request(self, request, client_address):
        if not self.connections.acquire(blocking=False):
            # Refused on the accepting thread without reading: a flood of idle sockets cannot grow threads.
            try:
                request.settimeout(1.0)
                request.sendall(_raw_response(503, "too many open connections; try again shortly"))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.connections.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, socket.timeout)):
            return  # the client went away or was cut: nothing to report
        traceback.print_exc(file=sys.stderr)


def _error_body(status: int, message: str) -> bytes:
    return json.dumps({"error": message, "status": status}).encode("utf-8")


def _raw_response(status: int, message: str) -> bytes:
    body = _error_body(status, message)
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON (JSON has no NaN or infinity)")


class Handler(BaseHTTPRequestHandler):
    """One connection's requests (HTTP/1.1 keep-alive; event streams close the connection)."""

    protocol_version = "HTTP/1.1"
    server_version = "rnnlab-explore"
    sys_version = ""
    error_content_type = "application/json"
    server: ExploreServer

    # ---- slow clients ----------------------------------------------------------------
    def handle_one_request(self):
        # The socket timeout bounds one read; this bounds the whole request (a client that
        # sends a byte every few seconds would otherwise hold its thread forever).
        self._timer = threading.Timer(self.server.limits.read_seconds, self._cut)
        self._timer.daemon = True
        self._timer.start()
        try:
            super().handle_one_request()
        finally:
            self._timer.cancel()

    def _cut(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- responses ---------------------------------------------------------------------
    def log_message(self, format, *args):  # one line per request would drown the URL line
        pass

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (a malformed request line, headers too long): JSON too."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # a line that never parsed: answer with a status line anyway
            self.request_version = "HTTP/1.0"
        try:
            self._send_json(code, {"error": message or HTTPStatus(code).phrase, "status": code})
        except OSError:
            pass

    def _send_json(self, status: int, payload: dict, extra: dict | None = None) -> None:
        body = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_static(self, route: str) -> None:
        body, kind = self.server.static[route]
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    # ---- request checks ----------------------------------------------------------------
    def _route(self) -> str:
        if not self.path.startswith("/") or self.path.startswith("//"):  # no absolute-form or authority targets
            raise RequestError(400, "the request target must be a path starting with /")
        return urlsplit(self.path).path

    def _check_host(self) -> None:
        host = (self.headers.get("Host") or "").strip().lower()
        if not host:
            raise RequestError(400, "the request has no Host header")
        if host not in self.server.hosts:
            raise RequestError(403, f"Host {host[:80]!r} is not this server (allowed: "
                                    f"{', '.join(sorted(self.server.hosts))})")
        origin = self.headers.get("Origin")
        if origin is not None:  # "null" too: a sandboxed frame of any site sends it
            netloc = urlsplit(origin).netloc.lower()
            if netloc not in self.server.hosts:
                raise RequestError(403, f"requests from pages of {origin[:80]!r} are refused")

    def _read_json(self):
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(411, "send the body with a Content-Length, not a Transfer-Encoding")
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "a POST needs a Content-Length header")
        if not length.strip().isdigit():
            raise RequestError(400, f"Content-Length {length[:40]!r} is not a non-negative integer")
        length = int(length)
        limit = self.server.limits.body_bytes
        if length > limit:
            raise RequestError(413, f"the body is {length:,} bytes; at most {limit:,} are accepted")
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise RequestError(415, f"the body must be Content-Type application/json, got {kind[:60]!r}")
        data = self.rfile.read(length)
        if len(data) < length:
            raise RequestError(400, f"the body ended after {len(data)} of {length} bytes")
        self._timer.cancel()  # the request is in: a long generation is not a slow client
        try:
            return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        except UnicodeDecodeError:
            raise RequestError(400, "the body is not UTF-8") from None
        except (ValueError, RecursionError) as exc:
            raise RequestError(400, f"the body is not valid JSON: {str(exc)[:120]}") from None

    # ---- dispatch ----------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        try:
            self._check_host()
            route = self._route()
            known = GET_ROUTES | POST_ROUTES
            if route not in known:
                raise RequestError(404, f"no route {route[:80]!r}")
            if route not in STATIC and route not in self.server.explorer.routes:
                raise RequestError(404, f"no route {route} for a {self.server.explorer.kind} folder (this one has: "
                                        f"{', '.join(sorted(self.server.explorer.routes))})")
            allowed = "GET" if route in GET_ROUTES else "POST"
            if method != allowed:
                if method == "POST" or self.headers.get("Content-Length"):
                    self.close_connection = True  # the body is not read: the connection cannot be reused
                raise RequestError(405, f"{route} takes {allowed}, not {method}")
            if method == "GET":
                self._timer.cancel()
                if route in STATIC:
                    self._send_static(route)
                elif route == "/api/info":
                    self._send_json(200, self.server.explorer.info())
                else:
                    self._send_json(200, self.server.explorer.training())
                return
            body = self._read_json()
            if route == "/api/generate":
                self._generate(body)
            elif route == "/api/surprisal":
                self._send_json(200, self.server.explorer.surprisal(body))
            elif route == "/api/classify":
                self._send_json(200, self.server.explorer.classify(body))
            elif route == "/api/tag":
                self._send_json(200, self.server.explorer.tag(body))
            else:
                self._send_json(200, self.server.explorer.units(body))
        except RequestError as exc:
            self._refuse(exc.status, str(exc))
        except RnnlabError as exc:
            self._refuse(400 if isinstance(exc, UsageError) else 422, str(exc))  # 422: well-formed, but unusable
        except (ConnectionError, TimeoutError, socket.timeout):
            self.close_connection = True
        except Exception:  # a bug: logged here, a plain 500 for the client
            traceback.print_exc(file=sys.stderr)
            self._refuse(500, "internal error (the server's terminal has the details)")

    def _refuse(self, status: int, message: str) -> None:
        # A refused request may have left its body unread (or half-read), and that must not be parsed
        # as the next request: every refusal ends the connection.
        self.close_connection = True
        try:
            self._send_json(status, {"error": message, "status": status})
        except OSError:
            self.close_connection = True

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_OPTIONS(self):
        self._handle("OPTIONS")

    # ---- server-sent events --------------------------------------------------------------
    def _generate(self, body) -> None:
        explorer = self.server.explorer
        options = explorer.check_generation(body)  # refusals before the stream starts are plain JSON
        if not explorer.generations.acquire(blocking=False):
            raise RequestError(429, f"{explorer.limits.generations} generations are already running; "
                                    "wait for one to end")
        try:
            self.close_connection = True  # the stream ends when the connection does
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            try:
                for event in explorer.generate(options):
                    self._event(event)
            except RnnlabError as exc:  # after the headers: the error travels as an event
                self._event({"type": "error", "error": str(exc)})
        except (ConnectionError, TimeoutError, socket.timeout):
            pass  # the stop button (or a closed tab): the generation ends with the connection
        finally:
            explorer.generations.release()

    def _event(self, event: dict) -> None:
        self.wfile.write(b"data: " + json.dumps(event, allow_nan=False).encode("utf-8") + b"\n\n")
        self.wfile.flush()


def make_server(explorer: Explorer, host: str = "127.0.0.1", port: int = 8000) -> ExploreServer:
    """A bound (not yet serving) server; ``port`` 0 picks a free one (see ``server.url``)."""
    try:
        return ExploreServer((host, port), explorer)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(server: ExploreServer) -> None:
    """Serve until Ctrl-C (KeyboardInterrupt) or SIGTERM; then stop generations and close."""
    try:
        server.serve_forever(poll_interval=0.25)
    finally:
        server.explorer.stopping.set()
        server.server_close()
        time.sleep(0.05)  # let open event streams see the stop flag and send their last event
