"""Local HTTP doubles of the APIs the live sources talk to, on 127.0.0.1 (no network, real clients).

Each double is a small threaded HTTP server with an in-memory world (posts, comments, topics) that a
test changes between runs (new posts, edits, deletions), a request log, and fault injection: a status
(429 with Retry-After, 500, 503), a slow response, malformed JSON or a dropped connection, for the next
``times`` requests whose path matches a pattern.
"""

from __future__ import annotations

import json
import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Fault:
    pattern: str
    kind: str                      # status | slow | badjson | drop
    status: int = 500
    times: int = 1
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    fired: int = 0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: str
    headers: dict[str, str]
    at: float
    status: int = 0


@dataclass
class Reply:
    status: int = 200
    body: Any = None               # JSON-able, or bytes / str sent as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"


class Double:
    """Subclasses implement ``route(request) -> Reply``."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._serving: threading.Thread | None = None
        self.errors: list[str] = []  # tracebacks of the double's own bugs (answered with 500)

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "start() the double first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "Double":
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                double._dispatch(self, method, body)

            def do_GET(self) -> None:  # noqa: N802
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._serving = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._serving.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Double":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults and the log -----------------------------------------------------------------------
    def inject(self, pattern: str, kind: str = "status", *, status: int = 500, times: int = 1, delay: float = 0.0,
               retry_after: float | None = None, method: str | None = None) -> Fault:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        fault = Fault(pattern, kind, status, times, delay, headers, method)
        with self._lock:
            self.faults.append(fault)
        return fault

    def hits(self, pattern: str, method: str | None = None) -> list[Request]:
        return [r for r in self.requests if re.search(pattern, r.path) and (method is None or r.method == method)]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def _fault_for(self, request: Request) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.fired < fault.times and re.search(fault.pattern, request.path) and \
                        (fault.method is None or fault.method == request.method):
                    fault.fired += 1
                    return fault
        return None

    def _dispatch(self, handler: BaseHTTPRequestHandler, method: str, body: str) -> None:
        parts = urlsplit(handler.path)
        request = Request(method, parts.path, parse_qs(parts.query, keep_blank_values=True), body,
                          {k.lower(): v for k, v in handler.headers.items()}, time.monotonic())
        with self._lock:
            self.requests.append(request)
        fault = self._fault_for(request)
        if fault is not None and fault.kind == "drop":
            request.status = -1
            handler.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            reply = Reply(fault.status, {"message": "injected fault", "error": fault.status}, dict(fault.headers))
        else:
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)
            with self._lock:
                try:
                    reply = self.route(request)
                except Exception:  # noqa: BLE001  (a bug in the double: answer 500 and keep it for the test)
                    self.errors.append(traceback.format_exc())
                    reply = Reply(500, {"message": "double error"})
            if fault is not None and fault.kind == "badjson":
                reply = Reply(200, b'{"kind": "Listing", "data": {"children": [{"kind": "t3", "da', reply.headers)
        request.status = reply.status
        payload = reply.body if isinstance(reply.body, bytes) else \
            reply.body.encode() if isinstance(reply.body, str) else json.dumps(reply.body).encode()
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", reply.content_type)
            handler.send_header("Content-Length", str(len(payload)))
            for key, value in {**self.default_headers(), **reply.headers}.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def default_headers(self) -> dict[str, str]:
        return {}

    def route(self, request: Request) -> Reply:
        raise NotImplementedError


def not_found(path: str) -> Reply:
    return Reply(404, {"message": "Not Found", "error": 404, "path": path})
