"""A scriptable OpenAI-protocol server on loopback, so the real OpenAI client can be tested.

Speaks Chat Completions (plain and streamed as server-sent events, with tool calls,
OpenRouter's ``usage.cost`` and ``annotations``, LiteLLM's cost header), the Responses API
(with ``web_search_call`` output items) and ``GET /v1/models``.  Tests queue behaviours
(success, HTTP error, hang, broken body); each request pops the next one, or uses
``default`` when the queue is empty. Every request is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

CHAT_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"
MODELS_PATH = "/v1/models"


@dataclass(frozen=True)
class Behaviour:
    """How the server answers one request."""

    kind: str  # "success" | "status" | "hang" | "invalid_json"
    text: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    usage: dict[str, Any] | None = None
    message: str = ""
    tool_calls: tuple[tuple[str, str], ...] = ()  # (function name, JSON arguments)
    annotations: tuple[dict[str, Any], ...] = ()  # url_citation annotations on the message
    searches: tuple[tuple[str, tuple[str, ...]], ...] = ()  # Responses: (query, source URLs)
    stream_usage: bool = True  # False: a streaming server that never sends usage
    param: str | None = None  # the error body's "param"


def success(
    text: str | None,
    *,
    prompt_tokens: int = 11,
    completion_tokens: int = 7,
    usage: bool = True,
    cost: float | None = None,
    headers: dict[str, str] | None = None,
    annotations: tuple[dict[str, Any], ...] = (),
    searches: tuple[tuple[str, tuple[str, ...]], ...] = (),
    stream_usage: bool = True,
) -> Behaviour:
    """200 with ``text`` as the assistant message (``None`` sends ``content: null``).

    ``cost`` adds OpenRouter's ``usage.cost``; ``headers`` e.g. LiteLLM's cost header."""
    counts: dict[str, Any] | None = None
    if usage:
        counts = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if cost is not None:
            counts["cost"] = cost
    return Behaviour(
        "success",
        text=text,
        usage=counts,
        headers=dict(headers or {}),
        annotations=annotations,
        searches=searches,
        stream_usage=stream_usage,
    )


def tool_call(name: str, arguments: dict[str, Any] | str, **kwargs: Any) -> Behaviour:
    """200 whose assistant message asks to call one function (finish_reason tool_calls)."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    base = success(None, **kwargs)
    return Behaviour("success", usage=base.usage, headers=base.headers, tool_calls=((name, args),))


def url_citation(url: str, title: str = "") -> dict[str, Any]:
    """A Chat Completions annotation as OpenRouter's web plugin sends it."""
    return {"type": "url_citation", "url_citation": {"url": url, "title": title, "content": ""}}


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


def refuse_param(param: str, message: str | None = None) -> Behaviour:
    """400 naming an unsupported parameter, the way OpenAI words it."""
    text = message or f"Unsupported parameter: '{param}' is not supported with this model."
    return Behaviour("status", status=400, message=text, param=param)


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


class _LoopbackServer:
    """A ThreadingHTTPServer on 127.0.0.1 with an OS-chosen port, as a context manager."""

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def origin(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _send_json(handler: BaseHTTPRequestHandler, code: int, body: Any) -> None:
    data = json.dumps(body).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class FakeOpenAIServer(_LoopbackServer):
    """The OpenAI API on loopback, answering each request with the next queued behaviour."""

    def __init__(self, default: Behaviour | None = None) -> None:
        self.default = default or success("default fake reply")
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.models: list[str] | None = None  # a list: served at GET /v1/models; None: 404
        self._serve(_make_handler(self))

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def push(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == CHAT_PATH]

    def responses_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == RESPONSES_PATH]

    def close(self) -> None:
        self._release.set()  # frees handlers stuck in hang()
        super().close()

    def _next(self, request: RecordedRequest) -> Behaviour:
        with self._lock:
            self.requests.append(request)
            return self._queue.popleft() if self._queue else self.default


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            record = RecordedRequest(self.path, dict(self.headers), None, time.monotonic())
            with server._lock:
                server.requests.append(record)
            if self.path == MODELS_PATH and server.models is not None:
                data = [
                    {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                    for m in server.models
                ]
                self._send(200, {"object": "list", "data": data})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = raw.decode("utf-8", "replace")
            record = RecordedRequest(self.path, dict(self.headers), body, time.monotonic())
            if self.path not in (CHAT_PATH, RESPONSES_PATH):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            behaviour = server._next(record)
            if behaviour.kind == "hang":
                server._release.wait(timeout=30)
                self.close_connection = True
                return
            streaming = isinstance(body, dict) and bool(body.get("stream"))
            if behaviour.kind == "invalid_json":
                self._send_raw(200, b'{"id": "chatcmpl-broken", "choices": [', {})
            elif behaviour.kind == "status":
                error = {
                    "message": behaviour.message,
                    "type": "fake_error",
                    "code": None,
                    "param": behaviour.param,
                }
                self._send(behaviour.status, {"error": error}, behaviour.headers)
            elif self.path == RESPONSES_PATH:
                response = _response(body, behaviour)
                if streaming:
                    self._send_events(_response_events(response, behaviour), behaviour.headers)
                else:
                    self._send(200, response, behaviour.headers)
            elif streaming:
                self._send_events(_chunks(body, behaviour), behaviour.headers)
            else:
                self._send(200, _completion(body, behaviour), behaviour.headers)

        def _send_events(self, events: list[dict[str, Any]], headers: dict[str, str]) -> None:
            data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
            data += b"data: [DONE]\n\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

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


def _model(request_body: Any) -> str:
    return request_body.get("model", "unknown") if isinstance(request_body, dict) else "unknown"


def _tool_calls(behaviour: Behaviour) -> list[dict[str, Any]]:
    return [
        {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
        for i, (n, a) in enumerate(behaviour.tool_calls)
    ]


def _completion(request_body: Any, behaviour: Behaviour) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": behaviour.text}
    if behaviour.tool_calls:
        message["tool_calls"] = _tool_calls(behaviour)
    if behaviour.annotations:
        message["annotations"] = list(behaviour.annotations)
    payload: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _model(request_body),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if behaviour.tool_calls else "stop",
            }
        ],
    }
    if behaviour.usage is not None:
        payload["usage"] = behaviour.usage
    return payload


def _chunks(request_body: Any, behaviour: Behaviour) -> list[dict[str, Any]]:
    """The completion as ``chat.completion.chunk`` events: text in pieces, tool call
    arguments split in two, finish reason, then usage when asked for."""
    head = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": _model(request_body),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    events = [chunk({"role": "assistant", "content": ""})]
    text = behaviour.text or ""
    for i in range(0, len(text), 4):
        events.append(chunk({"content": text[i : i + 4]}))
    for i, call in enumerate(_tool_calls(behaviour)):
        args = call["function"]["arguments"]
        half = len(args) // 2
        events.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": call["id"],
                            "type": "function",
                            "function": {
                                "name": call["function"]["name"],
                                "arguments": args[:half],
                            },
                        }
                    ]
                }
            )
        )
        events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]}))
    if behaviour.annotations:
        events.append(chunk({"annotations": list(behaviour.annotations)}))
    events.append(chunk({}, "tool_calls" if behaviour.tool_calls else "stop"))
    options = request_body.get("stream_options") if isinstance(request_body, dict) else None
    wants_usage = isinstance(options, dict) and options.get("include_usage")
    if wants_usage and behaviour.usage is not None and behaviour.stream_usage:
        events.append({**head, "choices": [], "usage": behaviour.usage})
    return events


def _response(request_body: Any, behaviour: Behaviour) -> dict[str, Any]:
    """A Responses API object: one web_search_call item per search, then the message."""
    output: list[dict[str, Any]] = []
    for i, (query, urls) in enumerate(behaviour.searches):
        output.append(
            {
                "type": "web_search_call",
                "id": f"ws_{i}",
                "status": "completed",
                "action": {
                    "type": "search",
                    "query": query,
                    "sources": [{"type": "url", "url": u} for u in urls],
                },
            }
        )
    annotations = [
        {
            "type": "url_citation",
            "url": a["url_citation"]["url"],
            "title": a["url_citation"].get("title", ""),
            "start_index": 0,
            "end_index": 1,
        }
        for a in behaviour.annotations
    ]
    output.append(
        {
            "type": "message",
            "id": "msg_0",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": behaviour.text or "", "annotations": annotations}
            ],
        }
    )
    payload: dict[str, Any] = {
        "id": "resp_fake",
        "object": "response",
        "created_at": 0,
        "status": "completed",
        "model": _model(request_body),
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    if behaviour.usage is not None:
        payload["usage"] = {
            "input_tokens": behaviour.usage["prompt_tokens"],
            "output_tokens": behaviour.usage["completion_tokens"],
            "total_tokens": behaviour.usage["total_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
    return payload


def _response_events(response: dict[str, Any], behaviour: Behaviour) -> list[dict[str, Any]]:
    text = behaviour.text or ""
    events: list[dict[str, Any]] = [
        {
            "type": "response.output_text.delta",
            "item_id": "msg_0",
            "output_index": 0,
            "content_index": 0,
            "delta": text[i : i + 4],
            "sequence_number": n,
            "logprobs": [],
        }
        for n, i in enumerate(range(0, len(text), 4))
    ]
    events.append(
        {"type": "response.completed", "response": response, "sequence_number": len(events)}
    )
    return events


class FakeTavily(_LoopbackServer):
    """Tavily's ``POST /search`` on loopback; records each body and Authorization header."""

    def __init__(self, results: list[dict[str, str]]) -> None:
        self.results = results
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                outer.calls.append((self.headers.get("Authorization") or "", body))
                if outer.status != 200:
                    payload: dict[str, Any] = {"detail": {"error": "quota exceeded"}}
                else:
                    payload = {"query": body.get("query"), "results": outer.results}
                _send_json(self, outer.status, payload)

        self._serve(Handler)

    @property
    def base_url(self) -> str:
        return self.origin


class FakeSearxng(_LoopbackServer):
    """A SearxNG-shaped ``GET /search?q=...&format=json`` on loopback."""

    def __init__(self, results: dict[str, list[dict[str, str]]] | None = None) -> None:
        self.results = results or {}
        self.queries: list[str] = []
        self.fail = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                from urllib.parse import parse_qs, urlparse

                url = urlparse(self.path)
                query = parse_qs(url.query)
                q = (query.get("q") or [""])[0]
                outer.queries.append(q)
                if url.path != "/search" or (query.get("format") or [""])[0] != "json":
                    code, body = 403, {"error": "json format not enabled"}
                elif outer.fail:
                    code, body = 500, {"error": "engine down"}
                else:
                    code, body = 200, {"query": q, "results": outer.results.get(q, [])}
                _send_json(self, code, body)

        self._serve(Handler)

    @property
    def base_url(self) -> str:
        return self.origin
