"""A real OpenAI-compatible chat-completions server for tests, docs and benchmarks.

HTTP backends are tested against a real server rather than a patched client, so the whole path
(sockets, status codes, headers, JSON) is exercised. `OpenAIServer` listens on 127.0.0.1 (port 0
picks a free port), answers `POST /v1/chat/completions` with a responder callable and
`GET /v1/models`, and can inject faults: 429 with Retry-After, 5xx, stalls, malformed JSON,
truncated replies and dropped connections. It counts every hit, per request fingerprint too, so
a test can assert that nothing was lost or sent twice, and records the peak number of requests in
flight and the idle time (no request in flight between the first arrival and the last reply).
`overload_above=N` plays an overloaded server: an arrival that finds more than N requests in flight
gets 429 at once. It also speaks the Batch API (ctxsynth.testing.batch_api) (`POST /v1/files`, `GET /v1/files/{id}/content`,
`POST /v1/batches`, `GET /v1/batches/{id}`): each batch line goes through the same responder in a
background thread, after `batch_delay_s`; `batch_answer_limit` answers only that many lines and
then lets the batch expire. Run `python -m ctxsynth.testing.serve --port 8000` for an echo
server by hand, or with `--fault-rate/--overload-above/--bursts` as a separate process for
benchmarks (it prints its URL on the first line; `GET /_stats` and `POST /_stats/reset` read and
reset its counters).
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ctxsynth.testing.batch_api import BatchAPI, create_batch, upload
from ctxsynth.testing.scripting import (
    Fault,
    FaultRule,
    Hit,
    HitRecord,
    Reply,
    Responder,
    completion_body,
    echo_responder,
    request_fingerprint,
)

log = logging.getLogger(__name__)


Headers = tuple[tuple[str, str], ...]
CHAT_ROUTES = frozenset({"/v1/chat/completions", "/chat/completions"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # a reply goes out as two writes (headers, then body): with Nagle on, the body waits for the
    # client's delayed ACK of the headers, which added ~40 ms to every reply (0.544 s at --latency 0.5)
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("openai test server: " + format, *args)

    def _send_json(self, status: int, payload: Any, headers: Headers = ()) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?")[0].rstrip("/").removeprefix("/v1")
        app = self.server.app
        if path == "/_stats":
            self._send_json(200, app.stats())
        elif path == "/models":
            model = {"id": app.model, "object": "model", "created": 0, "owned_by": "ctxsynth"}
            self._send_json(200, {"object": "list", "data": [model]})
        elif path.startswith("/files/") and path.endswith("/content") and path[7:-8] in app._files:
            data = app._files[path[7:-8]]["content"]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif path.startswith("/batches/") and path[9:] in app._batches:
            self._send_json(200, app._batch_view(path[9:]))
        else:
            self._not_found()

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0].rstrip("/")
        if path == "/_stats/reset":
            self.server.app.reset_stats()
            self._send_json(200, {})
            return
        if path in ("/v1/files", "/files"):
            upload(self, raw)
            return
        if path in ("/v1/batches", "/batches"):
            create_batch(self, raw)
            return
        if path not in CHAT_ROUTES:
            self._not_found()
            return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError("body must be an object with a 'messages' list")
        except ValueError as exc:
            self._send_json(400, {"error": {"message": f"bad request: {exc}", "type": "invalid_request_error"}})
            return
        app = self.server.app
        hit, in_flight = app._arrive(body)
        outcome, status, payload, headers = "responder_error", 500, b"{}", ()
        try:
            outcome, status, payload, headers = self._answer(app, hit, in_flight)
        finally:  # recorded before the bytes go out: a client holding its reply finds the record
            app._leave(HitRecord(hit.key, hit.n, hit.total, in_flight, outcome,
                                 self.headers.get("Authorization", ""), tuple(self.headers.items()), self.path))
        try:
            if status is None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                self._send_json(status, payload, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout) before the answer was written

    def _answer(self, app: OpenAIServer, hit: Hit, in_flight: int) -> tuple[str, int | None, dict[str, Any] | bytes, Headers]:
        """Decide the response: (outcome, status or None to drop the connection, body, headers)."""
        if app.overload_above is not None and in_flight > app.overload_above:
            error = {"error": {"message": "overloaded", "type": "rate_limit", "code": 429}}
            return "http_429", 429, error, (("Retry-After", "1"),)
        fault = app._fault_for(hit)
        kind = fault.kind if fault is not None else "ok"
        if fault is not None and kind == "status" and fault.status == 429:
            error = {"error": {"message": fault.message, "type": "injected", "code": 429}}
            return "http_429", 429, error, fault.headers  # a rate limiter answers before the model
        if app.latency_s:
            app._stopping.wait(app.latency_s)
        if fault is not None and kind == "status":
            error = {"error": {"message": fault.message, "type": "injected", "code": fault.status}}
            return f"http_{fault.status}", fault.status, error, fault.headers
        if kind == "drop":
            return "drop", None, b"", ()
        if kind == "malformed":
            return "malformed", 200, b'{"id": "chatcmpl-broken", "choices": [{"message": {"content": "he', ()
        if fault is not None and kind == "stall" and self._hung_up_within(app, fault.seconds):
            return "abandoned", None, b"", ()  # the client gave up: no longer in flight
        try:
            reply = app._respond(hit.body)
        except Exception as exc:  # a broken responder is a 500, not a dead connection
            log.exception("openai test server: responder failed")
            return "responder_error", 500, {"error": {"message": f"responder failed: {exc!r}", "type": "server"}}, ()
        if kind == "truncated":
            reply = Reply(reply.text[: len(reply.text) // 2], "length", reply.usage)
        return kind, 200, completion_body(app.model, reply, hit.body), ()


    def _hung_up_within(self, app: OpenAIServer, seconds: float) -> bool:
        """Wait up to `seconds` (a stall); True as soon as the client closes its end."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0 and not app._stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], min(0.1, left))
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        return True
                except OSError:
                    return True
                app._stopping.wait(min(0.1, left))  # pipelined bytes, not a hang-up: keep stalling
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default listen backlog of 5 drops SYNs: connections wait 1 s to retry
    app: OpenAIServer


@dataclass
class _Injection:
    fault: Fault
    times: int
    match: Callable[[dict[str, Any]], bool] | None


@dataclass
class _Counters:
    total: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    by_key: Counter[str] = field(default_factory=Counter)
    records: dict[int, HitRecord] = field(default_factory=dict)
    first_arrival: float | None = None
    last_leave: float | None = None
    idle_s: float = 0.0  # no request in flight, between the first arrival and the last reply
    last_event: float | None = None  # the last arrival or reply
    max_gap_s: float = 0.0  # the longest time with no request arriving and none answered (a stall waited out)
    outcomes: Counter[str] = field(default_factory=Counter)


class OpenAIServer(BatchAPI):
    """Context manager: `with OpenAIServer(responder) as srv: OpenAIBackend(m, base_url=srv.url)`."""

    def __init__(
        self,
        responder: Responder = echo_responder,
        *,
        fault_rule: FaultRule | None = None,
        latency_s: float = 0.0,
        model: str = "test-model",
        host: str = "127.0.0.1",
        port: int = 0,
        batch_delay_s: float = 0.0,
        batch_answer_limit: int | None = None,
        overload_above: int | None = None,
        keep_records: bool = True,
    ) -> None:
        self.overload_above = overload_above
        self.keep_records = keep_records  # False: no per-hit records (a long benchmark run)
        self.responder = responder
        self.batch_delay_s = batch_delay_s
        self.batch_answer_limit = batch_answer_limit
        self._files: dict[str, dict[str, Any]] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self.batch_lines_answered = 0  # every batch line that went through the responder
        self.fault_rule = fault_rule
        self.latency_s = latency_s
        self.model = model
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._injections: list[_Injection] = []
        self._counters = _Counters()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.app = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL to hand to an OpenAI client (ends in /v1)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="openai-test-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until Ctrl-C, then close the socket (the command line's server)."""
        try:
            self._httpd.serve_forever(poll_interval=0.05)
        except KeyboardInterrupt:
            pass
        finally:
            self._httpd.server_close()

    def close(self) -> None:
        self._stopping.set()  # wakes stalled and slow handlers
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def inject(self, fault: Fault, times: int = 1, match: Callable[[dict[str, Any]], bool] | None = None) -> None:
        """Give `fault` to the next `times` requests (those whose body satisfies `match`, if given).
        Injections are used in the order they were added, before `fault_rule` is asked."""
        with self._lock:
            self._injections.append(_Injection(fault, times, match))

    @property
    def hits(self) -> int:
        """Chat-completion requests received (every attempt counts)."""
        with self._lock:
            return self._counters.total

    def hits_by_key(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters.by_key)

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._counters.max_in_flight

    def records(self) -> list[HitRecord]:
        """One record per finished hit, in arrival order."""
        with self._lock:
            return [self._counters.records[t] for t in sorted(self._counters.records)]

    def stats(self) -> dict[str, Any]:
        """Hits, peak in flight and idle time since the start or the last `reset_stats`."""
        with self._lock:
            c = self._counters
            span = (c.last_leave - c.first_arrival) if c.first_arrival and c.last_leave else 0.0
            return {"hits": c.total, "max_in_flight": c.max_in_flight, "busy_span_s": round(span, 4),
                    "idle_s": round(c.idle_s, 4), "idle_share": round(c.idle_s / span, 4) if span else 0.0,
                    "max_gap_s": round(c.max_gap_s, 4),
                    "outcomes": dict(c.outcomes)}

    def reset_stats(self) -> None:
        with self._lock:
            in_flight = self._counters.in_flight
            self._counters = _Counters(in_flight=in_flight)

    def _arrive(self, body: dict[str, Any]) -> tuple[Hit, int]:
        key = request_fingerprint(body)
        now = time.monotonic()
        with self._lock:
            c = self._counters
            if c.first_arrival is None:
                c.first_arrival = now
            elif c.in_flight == 0 and c.last_leave is not None:
                c.idle_s += now - c.last_leave
            if c.last_event is not None:
                c.max_gap_s = max(c.max_gap_s, now - c.last_event)
            c.last_event = now
            c.total += 1
            c.by_key[key] += 1
            c.in_flight += 1
            c.max_in_flight = max(c.max_in_flight, c.in_flight)
            return Hit(key, c.by_key[key], c.total, body), c.in_flight

    def _leave(self, record: HitRecord) -> None:
        with self._lock:
            c = self._counters
            c.in_flight = max(0, c.in_flight - 1)
            now = time.monotonic()
            if c.last_event is not None:
                c.max_gap_s = max(c.max_gap_s, now - c.last_event)
            c.last_event = now
            if c.in_flight == 0:
                c.last_leave = now
            c.outcomes[record.outcome] += 1
            if self.keep_records:
                c.records[record.total] = record

    def _fault_for(self, hit: Hit) -> Fault | None:
        with self._lock:
            for inj in self._injections:
                if inj.times > 0 and (inj.match is None or inj.match(hit.body)):
                    inj.times -= 1
                    return inj.fault
        return self.fault_rule(hit) if self.fault_rule else None

    def _respond(self, body: dict[str, Any]) -> Reply:
        reply = self.responder(body)
        return reply if isinstance(reply, Reply) else Reply(str(reply))
