"""A scriptable Chat Completions server on loopback, so the real OpenAI client can be tested.

Tests queue behaviours (success, HTTP error, hang, broken body); each request pops the next
one, or uses ``default`` when the queue is empty. Every request is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Behaviour:
    """How the server answers one request."""

    kind: str  # "success" | "status" | "hang" | "invalid_json"
    text: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    usage: dict[str, int] | None = None
    message: str = ""


def success(
    text: str | None, *, prompt_tokens: int = 11, completion_tokens: int = 7, usage: bool = True
) -> Behaviour:
    """200 with ``text`` as the assistant message (``None`` sends ``content: null``)."""
    counts = None
    if usage:
        counts = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return Behaviour("success", text=text, usage=counts)


def status(
    code: int,
    message: str = "",
    *,
    retry_after: str | None = None,
    retry_after_ms: str | None = None,
) -> Behaviour:
    """An HTTP error with an OpenAI-style error body; 429 carries ``Retry-After: 0`` by default."""
    headers: dict[str, str] = {}
    if retry_after is None and code == 429:
        retry_after = "0"
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if retry_after_ms is not None:
        headers["retry-after-ms"] = retry_after_ms
    return Behaviour("status", status=code, headers=headers, message=message or f"fake {code}")


def hang() -> Behaviour:
    """Never answer (until the server shuts down), to trigger the client's timeout."""
    return Behaviour("hang")


def invalid_json() -> Behaviour:
    """200 with a body that claims to be JSON but is not."""
    return Behaviour("invalid_json")


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float


class FakeOpenAIServer:
    """Context manager running a ThreadingHTTPServer on 127.0.0.1 with an OS-chosen port."""

    def __init__(self, default: Behaviour | None = None) -> None:
        self.default = default or success("default fake reply")
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def push(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == CHAT_PATH]

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._release.set()  # frees handlers stuck in hang()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next(self, request: RecordedRequest) -> Behaviour:
        with self._lock:
            self.requests.append(request)
            return self._queue.popleft() if self._queue else self.default


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = raw.decode("utf-8", "replace")
            record = RecordedRequest(self.path, dict(self.headers), body, time.monotonic())
            if self.path != CHAT_PATH:
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            behaviour = server._next(record)
            if behaviour.kind == "hang":
                server._release.wait(timeout=30)
                self.close_connection = True
                return
            if behaviour.kind == "invalid_json":
                self._send_raw(200, b'{"id": "chatcmpl-broken", "choices": [', {})
            elif behaviour.kind == "status":
                error = {"message": behaviour.message, "type": "fake_error", "code": None}
                self._send(behaviour.status, {"error": error}, behaviour.headers)
            else:
                self._send(200, _completion(body, behaviour))

        def _send(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            self._send_raw(code, json.dumps(payload).encode(), headers or {})

        def _send_raw(self, code: int, data: bytes, headers: dict[str, str]) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _completion(request_body: Any, behaviour: Behaviour) -> dict[str, Any]:
    model = request_body.get("model", "unknown") if isinstance(request_body, dict) else "unknown"
    payload: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": behaviour.text},
                "finish_reason": "stop",
            }
        ],
    }
    if behaviour.usage is not None:
        payload["usage"] = behaviour.usage
    return payload
