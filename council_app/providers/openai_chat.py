"""Real provider for any OpenAI-compatible endpoint, via the official ``openai`` client.

- Chat Completions, streamed (``stream_options.include_usage`` for the final usage), so the
  caller sees the text grow; servers without streaming usage still work (usage unknown).
- Web search per call: OpenAI itself -> the Responses API's hosted ``web_search`` tool;
  OpenRouter -> its ``web`` plugin; any other endpoint -> a ``web_search`` function tool
  the model calls through standard tool calling, answered by ``search.py``.
- Optional parameters (``reasoning_effort``, ``response_format``, ``stream_options``,
  tools) go only to models that take them: the catalogue says which models reason; a 400
  naming a parameter drops it, retries once, and is remembered for that model.
- Bounded: a per-attempt timeout (total, with a short connect timeout), ``max_retries``
  retries on 408/409/429/5xx, timeouts and lost connections, ``Retry-After`` honoured,
  every retry returned to the caller for the session log; a cancel event and a deadline
  stop the call between chunks and between attempts.
"""

from __future__ import annotations

import email.utils
import http
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlparse

import httpx2 as httpx
import openai
from openai.types.chat import ChatCompletion

from . import catalog
from .base import Completion, OnDelta, ProviderCancelled, ProviderError, ProviderInfo
from .search import SearchError, SearchService

log = logging.getLogger(__name__)

PLACEHOLDER_KEY = "not-needed"  # local servers (Ollama, vLLM, LM Studio) ignore the key
GATEWAY_COST_HEADER = "x-litellm-response-cost"
MAX_TOOL_ROUNDS = 3
_MAX_DETAIL_CHARS = 300
_DELTA_INTERVAL_S = 0.1  # on_delta at most this often (plus once at the end)
# Checked in this order: a longer name first, so "reasoning" does not shadow "reasoning_effort".
_OPTIONAL_PARAMS = (
    "reasoning_effort",
    "stream_options",
    "response_format",
    "tool_choice",
    "tools",
    "plugins",
    "reasoning",
    "usage",
)
_EXTRA_BODY = ("plugins", "usage")
_REFUSAL_WORDS = (
    "unsupported",
    "not supported",
    "does not support",
    "unrecognized",
    "unknown",
    "not allowed",
    "not permitted",
    "extra",
    "invalid",
)

WEB_SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "web_search",
        "description": (
            "Search the web for current facts. Returns titles, URLs and snippets; cite the "
            "URLs you rely on."
        ),
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "the search query"}},
            "required": ["query"],
        },
    },
}

T = TypeVar("T")


def flavour_of(base_url: str | None) -> str:
    """ "openai" (OpenAI itself), "openrouter", or "generic" (any other compatible server)."""
    if not base_url:
        return "openai"
    host = (urlparse(base_url).hostname or "").lower()
    if host == "api.openai.com":
        return "openai"
    if "openrouter" in host:
        return "openrouter"
    return "generic"


class _AttemptTimeout(Exception):
    """One attempt ran past its total time while streaming."""


@dataclass
class _Reply:
    """One HTTP exchange's outcome, before it becomes a ``Completion``."""

    text: str = ""
    model: str | None = None
    usage: tuple[int, int] | None = None
    gateway_cost: float | None = None
    finish_reason: str = ""
    tool_calls: list[dict[str, str]] = field(default_factory=list)
    citations: list[dict[str, str]] = field(default_factory=list)
    tools_used: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Call:
    """What one ``complete`` needs while it runs: its bounds and what it has gathered."""

    model: str
    task: str
    on_delta: OnDelta | None
    cancel: threading.Event | None
    deadline: float
    retries: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise ProviderCancelled("the call was cancelled", self.retries)
        if time.monotonic() >= self.deadline:
            raise ProviderCancelled("the call ran out of time (deadline)", self.retries)


class _Deltas:
    """Hands the growing text to ``on_delta``, throttled: a token-by-token callback with
    the whole text would be quadratic."""

    def __init__(self, on_delta: OnDelta | None) -> None:
        self.on_delta = on_delta
        self.parts: list[str] = []
        self._last = 0.0

    def add(self, piece: str) -> None:
        self.parts.append(piece)
        now = time.monotonic()
        if self.on_delta is not None and now - self._last >= _DELTA_INTERVAL_S:
            self._last = now
            self.on_delta("".join(self.parts))

    def text(self) -> str:
        text = "".join(self.parts)
        if self.on_delta is not None and text:
            self.on_delta(text)
        return text


class OpenAIChatProvider:
    """``LLMProvider`` backed by any OpenAI-compatible endpoint."""

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        max_retries: int = 2,
        stream: bool = True,
        search: SearchService | None = None,
        max_retry_wait_s: float = 60.0,
        flavour: str | None = None,
    ) -> None:
        """``flavour`` overrides what the base URL says ("openai", "openrouter", "generic"),
        e.g. for a proxy in front of OpenRouter."""
        kwargs: dict[str, Any] = {
            "api_key": api_key or PLACEHOLDER_KEY,
            "timeout": httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s)),
            "max_retries": 0,  # retried here, so each retry is counted, bounded and logged
        }
        if base_url:
            kwargs["base_url"] = base_url
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_retries = max_retries
        self.stream = stream
        self.search = search
        self.max_retry_wait_s = max_retry_wait_s
        self.flavour = flavour or flavour_of(base_url)
        self.has_key = bool(api_key)
        self._client = openai.OpenAI(**kwargs)
        self._unsupported: dict[str, set[str]] = {}
        self._unsupported_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    def close(self) -> None:
        """Release pooled HTTP connections."""
        self._client.close()

    # -- what the UI and /api/health show ------------------------------------------------

    def web_search_via(self) -> str | None:
        if self.flavour in ("openai", "openrouter"):
            return self.flavour
        return self.search.name if self.search is not None else None

    def info(self) -> ProviderInfo:
        hint = None
        if self.web_search_via() is None:
            hint = (
                "Web search is unavailable with this endpoint: set SEARXNG_URL (or "
                "TAVILY_API_KEY) to let agents search."
            )
        return ProviderInfo(
            name=self.name,
            offline=False,
            base_url=_without_credentials(self.base_url),
            web_search=self.web_search_via(),
            hint=hint,
        )

    def list_models(self) -> list[str]:
        """Model ids the endpoint serves (``GET /models``); ``ProviderError`` when it cannot say."""
        try:
            page = self._client.with_options(timeout=min(self.timeout_s, 10.0)).models.list()
            return sorted({m.id for m in page if getattr(m, "id", None)})
        except (openai.OpenAIError, ValueError) as e:
            raise ProviderError(self._describe(e, "(model list)")) from e

    # -- one call -------------------------------------------------------------------------

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        model: str,
        task: str,
        reasoning_effort: str | None = None,
        json_mode: bool = False,
        web_search: bool = False,
        on_delta: OnDelta | None = None,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
    ) -> Completion:
        """One answer; raises ``ProviderError`` once retries are spent, ``ProviderCancelled``
        when ``cancel`` is set or ``deadline`` (``time.monotonic()``) passes."""
        started = time.perf_counter()
        budget = self.timeout_s * (self.max_retries + 1) + self.max_retry_wait_s
        call = _Call(
            model=model,
            task=task,
            on_delta=on_delta,
            cancel=cancel,
            deadline=deadline if deadline is not None else time.monotonic() + budget,
        )
        effort = reasoning_effort if reasoning_effort and reasoning_effort != "none" else None
        if effort and catalog.supports_reasoning(model) is False:
            effort = None  # the catalogue says this model takes no reasoning effort
        if web_search and self.flavour == "openai":
            reply = self._responses_with_search(call, messages, effort, json_mode)
        else:
            params: dict[str, Any] = {"model": model, "messages": messages}
            if effort:
                params["reasoning_effort"] = effort
            if json_mode:
                params["response_format"] = {"type": "json_object"}
            if self.flavour == "openrouter":
                params["usage"] = {"include": True}  # its usage.cost: what the call cost
                if web_search:
                    params["plugins"] = [{"id": "web"}]
            if web_search and self.flavour == "generic" and self.search is not None:
                reply = self._chat_with_tools(call, params)
            else:
                reply = self._send(call, params, self._chat_once)
                if params.get("plugins") and reply.citations:
                    reply.tools_used.append(
                        {
                            "tool": "web_search",
                            "query": None,  # OpenRouter does not say what it searched for
                            "urls": [c["url"] for c in reply.citations],
                            "via": "openrouter",
                        }
                    )
        text = reply.text.strip()
        if not text:
            raise ProviderError(
                f"model {model!r} returned an empty answer"
                + (f" (finish_reason: {reply.finish_reason})" if reply.finish_reason else ""),
                call.retries,
            )
        duration_ms = (time.perf_counter() - started) * 1000
        completion = Completion(
            text=text,
            model=reply.model or model,
            provider=self.name,
            input_tokens=reply.usage[0] if reply.usage else 0,
            output_tokens=reply.usage[1] if reply.usage else 0,
            duration_ms=duration_ms,
            usage_known=reply.usage is not None,
            gateway_cost_usd=reply.gateway_cost,
            tools_used=reply.tools_used,
            citations=_unique(reply.citations),
            retries=call.retries,
            dropped_params=tuple(call.dropped),
        )
        log.info(
            "LLM call ok: task=%s model=%s tokens=%d/%d in %.0f ms (%d retries)",
            task,
            completion.model,
            completion.input_tokens,
            completion.output_tokens,
            duration_ms,
            len(call.retries),
        )
        return completion

    # -- retries and refused parameters --------------------------------------------------

    def _send(
        self, call: _Call, params: dict[str, Any], once: Callable[[_Call, dict[str, Any]], T]
    ) -> T:
        """``once(params)`` with retries; a parameter the model refuses is dropped once."""
        attempt = 0
        while True:
            call.check()
            params = self._without_refused(call, params)
            try:
                return once(call, params)
            except openai.APIStatusError as e:
                sent = {**params, "stream_options": True} if self.stream else params
                refused = _refused_param(e, sent) if e.status_code in (400, 422) else None
                if refused is not None:
                    self._remember_refused(call.model, refused)
                    call.dropped.append(refused)
                    call.retries.append(
                        {
                            "attempt": attempt + 1,
                            "reason": f"HTTP {e.status_code}: model refused '{refused}'; "
                            "retrying without it",
                            "wait_s": 0.0,
                        }
                    )
                    continue
                if not _is_retryable(e.status_code):
                    raise self._error(e, call) from e
                wait = _retry_after(e.response) if e.response is not None else None
                self._pause(call, e, attempt, wait)
            except (openai.APITimeoutError, openai.APIConnectionError, _AttemptTimeout) as e:
                self._pause(call, e, attempt, None)
            except (openai.OpenAIError, ValueError) as e:
                # ValueError: a 200 whose body is not valid JSON / not a completion.
                raise self._error(e, call) from e
            attempt += 1

    def _pause(self, call: _Call, error: Exception, attempt: int, wait: float | None) -> None:
        """Wait before the next attempt, or give up (retries spent, or no time left)."""
        if attempt >= self.max_retries:
            raise self._error(error, call, gave_up=True) from error
        if wait is None:
            wait = min(8.0, 0.5 * 2**attempt) + random.uniform(0, 0.25)
        left = call.deadline - time.monotonic()
        if wait > self.max_retry_wait_s or wait >= left:
            # The server asks for longer than we may wait: retrying early would only be
            # refused again, so give up now and say why.
            failure = self._error(error, call, gave_up=True)
            failure.args = (f"{failure} (asked to wait {wait:g} s before retrying)",)
            raise failure from error
        call.retries.append(
            {"attempt": attempt + 1, "reason": self._describe(error, call.model), "wait_s": wait}
        )
        log.warning("LLM call retry %d in %.2f s: %s", attempt + 1, wait, call.retries[-1])
        if call.cancel is not None:
            if call.cancel.wait(wait):
                raise ProviderCancelled("the call was cancelled", call.retries)
        else:
            time.sleep(wait)

    def _without_refused(self, call: _Call, params: dict[str, Any]) -> dict[str, Any]:
        with self._unsupported_lock:
            refused = self._unsupported.get(call.model, set())
        gone = [p for p in refused if p in params]
        if not gone:
            return params
        for name in gone:
            if name not in call.dropped:
                call.dropped.append(name)
        return {k: v for k, v in params.items() if k not in refused}

    def _remember_refused(self, model: str, param: str) -> None:
        with self._unsupported_lock:
            self._unsupported.setdefault(model, set()).add(param)
        log.warning("Model %r refuses %r; no longer sent to it", model, param)

    def _attempt_timeout(self, call: _Call) -> tuple[httpx.Timeout, float]:
        total = min(self.timeout_s, max(0.05, call.deadline - time.monotonic()))
        timeout = httpx.Timeout(total, connect=min(self.connect_timeout_s, total))
        return timeout, time.monotonic() + total

    # -- Chat Completions ------------------------------------------------------------------

    def _chat_once(self, call: _Call, params: dict[str, Any]) -> _Reply:
        timeout, ends = self._attempt_timeout(call)
        client = self._client.with_options(timeout=timeout)
        params = _with_extra_body(params)
        if not self.stream:
            raw = client.chat.completions.with_raw_response.create(**params)
            reply = _chat_reply(raw.parse())
            reply.gateway_cost = _header_cost(raw.headers, reply.gateway_cost)
            if call.on_delta is not None and reply.text:
                call.on_delta(reply.text)
            return reply
        streamed = {**params, "stream": True}
        if "stream_options" not in self._refused(call.model):
            streamed["stream_options"] = {"include_usage": True}
        raw = client.chat.completions.with_raw_response.create(**streamed)
        if "text/event-stream" not in raw.headers.get("content-type", ""):
            # A server that ignores stream=True answers with one JSON body.
            body = json.loads(raw.http_response.read())
            reply = _chat_reply(ChatCompletion.model_validate(body))
            if call.on_delta is not None and reply.text:
                call.on_delta(reply.text)
            reply.gateway_cost = _header_cost(raw.headers, reply.gateway_cost)
            return reply
        stream = raw.parse()
        try:
            reply = self._read_chat_stream(call, stream, ends)
        finally:
            stream.close()
        reply.gateway_cost = _header_cost(raw.headers, reply.gateway_cost)
        return reply

    def _refused(self, model: str) -> set[str]:
        with self._unsupported_lock:
            return set(self._unsupported.get(model, set()))

    def _read_chat_stream(self, call: _Call, chunks: Iterable[Any], ends: float) -> _Reply:
        reply = _Reply()
        deltas = _Deltas(call.on_delta)
        calls: dict[int, dict[str, str]] = {}
        for chunk in chunks:
            call.check()
            if time.monotonic() > ends:
                raise _AttemptTimeout(f"no complete answer within {self.timeout_s:g} s")
            reply.model = getattr(chunk, "model", None) or reply.model
            usage = getattr(chunk, "usage", None)
            if usage is not None:
                reply.usage, cost = _usage(usage)
                reply.gateway_cost = cost if cost is not None else reply.gateway_cost
            for choice in getattr(chunk, "choices", None) or []:
                if getattr(choice, "index", 0) != 0:
                    continue
                delta = getattr(choice, "delta", None)
                piece = getattr(delta, "content", None)
                if isinstance(piece, str) and piece:
                    deltas.add(piece)
                for tc in getattr(delta, "tool_calls", None) or []:
                    slot = calls.setdefault(
                        int(getattr(tc, "index", 0) or 0), {"id": "", "name": "", "arguments": ""}
                    )
                    slot["id"] = getattr(tc, "id", None) or slot["id"]
                    fn = getattr(tc, "function", None)
                    if fn is not None:
                        slot["name"] = getattr(fn, "name", None) or slot["name"]
                        slot["arguments"] += getattr(fn, "arguments", None) or ""
                reply.citations += _annotations(_extra(delta).get("annotations"))
                if getattr(choice, "finish_reason", None):
                    reply.finish_reason = str(choice.finish_reason)
        reply.text = deltas.text()
        reply.tool_calls = [calls[i] for i in sorted(calls)]
        return reply

    def _chat_with_tools(self, call: _Call, params: dict[str, Any]) -> _Reply:
        """Standard tool calling: the model asks for searches, we run them, it answers."""
        assert self.search is not None
        messages: list[dict[str, Any]] = list(params["messages"])
        total = _Reply()
        usage_known, costs_known = True, True
        input_tokens = output_tokens = 0
        gateway = 0.0
        for round_ in range(MAX_TOOL_ROUNDS + 1):
            round_params = {**params, "messages": messages}
            if round_ < MAX_TOOL_ROUNDS:
                round_params["tools"] = [WEB_SEARCH_TOOL]
            reply = self._send(call, round_params, self._chat_once)
            if reply.usage is None:
                usage_known = False
            else:
                input_tokens += reply.usage[0]
                output_tokens += reply.usage[1]
            if reply.gateway_cost is None:
                costs_known = False
            else:
                gateway += reply.gateway_cost
            total.model = reply.model or total.model
            total.text, total.finish_reason = reply.text, reply.finish_reason
            total.citations += reply.citations
            searches = [tc for tc in reply.tool_calls if tc["name"] == "web_search"]
            if not searches or round_ == MAX_TOOL_ROUNDS:
                break
            messages.append(
                {
                    "role": "assistant",
                    "content": reply.text or None,
                    "tool_calls": [
                        {
                            "id": tc["id"],
                            "type": "function",
                            "function": {"name": tc["name"], "arguments": tc["arguments"]},
                        }
                        for tc in reply.tool_calls
                    ],
                }
            )
            for tc in reply.tool_calls:
                content = self._run_search(tc, total)
                messages.append({"role": "tool", "tool_call_id": tc["id"], "content": content})
        total.usage = (input_tokens, output_tokens) if usage_known else None
        total.gateway_cost = gateway if costs_known else None
        return total

    def _run_search(self, tool_call: dict[str, str], total: _Reply) -> str:
        assert self.search is not None
        if tool_call["name"] != "web_search":
            return f"error: there is no tool named {tool_call['name']!r}"
        try:
            args = json.loads(tool_call["arguments"] or "{}")
        except ValueError:
            args = {}
        query = str(args.get("query") or "").strip() if isinstance(args, dict) else ""
        if not query:
            return "error: web_search needs a non-empty 'query'"
        try:
            results = self.search.search(query)
        except SearchError as e:
            log.warning("Web search failed: %s", e)
            total.tools_used.append(
                {"tool": "web_search", "query": query, "urls": [], "error": str(e)}
            )
            return f"error: the search failed ({e})"
        total.tools_used.append(
            {
                "tool": "web_search",
                "query": query,
                "urls": [r.url for r in results],
                "via": self.search.name,
            }
        )
        total.citations += [{"url": r.url, "title": r.title} for r in results]
        if not results:
            return "no results"
        return "\n\n".join(
            f"[{i}] {r.title}\nURL: {r.url}\n{r.snippet}" for i, r in enumerate(results, 1)
        )

    # -- Responses API (OpenAI's hosted web search) --------------------------------------

    def _responses_with_search(
        self, call: _Call, messages: list[dict[str, str]], effort: str | None, json_mode: bool
    ) -> _Reply:
        params: dict[str, Any] = {
            "model": call.model,
            "input": messages,
            "tools": [{"type": "web_search"}],
        }
        if effort:
            params["reasoning"] = {"effort": effort}
        if json_mode:
            params["text"] = {"format": {"type": "json_object"}}
        return self._send(call, params, self._responses_once)

    def _responses_once(self, call: _Call, params: dict[str, Any]) -> _Reply:
        timeout, ends = self._attempt_timeout(call)
        client = self._client.with_options(timeout=timeout)
        if not self.stream:
            raw = client.responses.with_raw_response.create(**params)
            reply = _responses_reply(raw.parse())
        else:
            raw = client.responses.with_raw_response.create(**params, stream=True)
            stream = raw.parse()
            deltas = _Deltas(call.on_delta)
            final: Any = None
            try:
                for event in stream:
                    call.check()
                    if time.monotonic() > ends:
                        raise _AttemptTimeout(f"no complete answer within {self.timeout_s:g} s")
                    kind = getattr(event, "type", "")
                    if kind == "response.output_text.delta":
                        deltas.add(getattr(event, "delta", "") or "")
                    elif kind in ("response.completed", "response.incomplete"):
                        final = getattr(event, "response", None)
                    elif kind in ("response.failed", "error"):
                        raise ValueError(f"the response failed: {_one_line(str(event))}")
            finally:
                stream.close()
            streamed_text = deltas.text()
            reply = _responses_reply(final) if final is not None else _Reply()
            reply.text = reply.text or streamed_text
        if call.on_delta is not None and reply.text and not self.stream:
            call.on_delta(reply.text)
        reply.gateway_cost = _header_cost(raw.headers, reply.gateway_cost)
        return reply

    # -- messages --------------------------------------------------------------------------

    def _error(self, error: Exception, call: _Call, gave_up: bool = False) -> ProviderError:
        message = self._describe(error, call.model)
        if gave_up and call.retries:
            message += f" (gave up after {len(call.retries)} retries)"
        log.warning("LLM call failed (task=%s): %s", call.task, message)
        return ProviderError(message, call.retries)

    def _describe(self, error: Exception, model: str) -> str:
        """A one-line, user-readable reason: HTTP status and the server's own message."""
        where = f"model {model!r} at {self.base_url}"
        if isinstance(error, openai.APIStatusError):
            code = error.status_code
            try:
                phrase = http.HTTPStatus(code).phrase
            except ValueError:
                phrase = "Error"
            detail = _detail(error.body) or error.message
            return f"HTTP {code} {phrase} from {where}: {_one_line(detail)}"
        if isinstance(error, openai.APITimeoutError | _AttemptTimeout):
            return f"timed out after {self.timeout_s:g} s waiting for {where}"
        if isinstance(error, openai.APIConnectionError):
            cause = error.__cause__ or error
            return f"cannot connect to {where}: {_one_line(str(cause) or type(cause).__name__)}"
        if isinstance(error, ValueError):
            return f"malformed response from {where}: {_one_line(str(error))}"
        return f"request to {where} failed: {_one_line(str(error) or type(error).__name__)}"


# ------------------------------------------------------------------------- reading replies


def _extra(obj: Any) -> dict[str, Any]:
    """Fields the client's types do not declare (OpenRouter's ``cost``, ``annotations``)."""
    if obj is None:
        return {}
    extra = getattr(obj, "model_extra", None)
    out = dict(extra) if isinstance(extra, dict) else {}
    for name in ("annotations", "cost"):
        value = getattr(obj, name, None)
        if value is not None and name not in out:
            out[name] = value
    return out


def _usage(usage: Any) -> tuple[tuple[int, int] | None, float | None]:
    prompt = getattr(usage, "prompt_tokens", None)
    if prompt is None:
        prompt = getattr(usage, "input_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    if completion is None:
        completion = getattr(usage, "output_tokens", None)
    counts = None
    if isinstance(prompt, int) and isinstance(completion, int):
        counts = (prompt, completion)
    return counts, _number(_extra(usage).get("cost"))


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            return None
        return parsed if parsed >= 0 else None
    return None


def _header_cost(headers: httpx.Headers, fallback: float | None) -> float | None:
    """LiteLLM's proxy reports what it charged in a response header."""
    cost = _number(headers.get(GATEWAY_COST_HEADER))
    return cost if cost is not None else fallback


def _annotations(items: Any) -> list[dict[str, str]]:
    """``url_citation`` annotations, flat (Responses) or nested (Chat Completions)."""
    out: list[dict[str, str]] = []
    for item in items if isinstance(items, list) else []:
        data = item if isinstance(item, dict) else getattr(item, "model_dump", lambda: {})()
        if not isinstance(data, dict) or data.get("type", "url_citation") != "url_citation":
            continue
        nested = data.get("url_citation")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else data
        url = inner.get("url")
        if isinstance(url, str) and url:
            out.append({"url": url, "title": str(inner.get("title") or "")})
    return out


def _chat_reply(response: Any) -> _Reply:
    reply = _Reply(model=getattr(response, "model", None))
    choices = getattr(response, "choices", None) or []
    if choices:
        message = getattr(choices[0], "message", None)
        content = getattr(message, "content", None)
        reply.text = content if isinstance(content, str) else ""
        reply.finish_reason = str(getattr(choices[0], "finish_reason", "") or "")
        for tc in getattr(message, "tool_calls", None) or []:
            fn = getattr(tc, "function", None)
            reply.tool_calls.append(
                {
                    "id": str(getattr(tc, "id", "") or ""),
                    "name": str(getattr(fn, "name", "") or ""),
                    "arguments": str(getattr(fn, "arguments", "") or ""),
                }
            )
        reply.citations = _annotations(_extra(message).get("annotations"))
    usage = getattr(response, "usage", None)
    if usage is not None:
        reply.usage, reply.gateway_cost = _usage(usage)
    return reply


def _responses_reply(response: Any) -> _Reply:
    reply = _Reply(model=getattr(response, "model", None))
    texts: list[str] = []
    for item in getattr(response, "output", None) or []:
        kind = getattr(item, "type", "")
        if kind == "web_search_call":
            action = getattr(item, "action", None)
            query = getattr(action, "query", None)
            sources = getattr(action, "sources", None) or []
            urls = [s for s in (getattr(src, "url", None) for src in sources) if s]
            reply.tools_used.append(
                {"tool": "web_search", "query": query, "urls": urls, "via": "openai"}
            )
        elif kind == "message":
            for part in getattr(item, "content", None) or []:
                if getattr(part, "type", "") == "output_text":
                    texts.append(getattr(part, "text", "") or "")
                    reply.citations += _annotations(getattr(part, "annotations", None))
    reply.text = "".join(texts)
    usage = getattr(response, "usage", None)
    if usage is not None:
        reply.usage, reply.gateway_cost = _usage(usage)
    status = getattr(response, "status", "")
    reply.finish_reason = str(status or "")
    # URLs cited but not listed by the search call still count as what the search found.
    if reply.tools_used and not any(t["urls"] for t in reply.tools_used):
        reply.tools_used[-1]["urls"] = [c["url"] for c in reply.citations]
    return reply


def _without_credentials(url: str) -> str:
    """A base URL fit to show: any ``user:password@`` part and query string removed."""
    parts = urlparse(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc, query="").geturl()


def _with_extra_body(params: dict[str, Any]) -> dict[str, Any]:
    """Fields the client does not declare (OpenRouter's ``plugins``) go in ``extra_body``."""
    extra = {k: params[k] for k in _EXTRA_BODY if k in params}
    if not extra:
        return params
    rest = {k: v for k, v in params.items() if k not in extra}
    return {**rest, "extra_body": extra}


def _unique(citations: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: set[str] = set()
    out = []
    for c in citations:
        if c["url"] not in seen:
            seen.add(c["url"])
            out.append(c)
    return out


def _refused_param(error: openai.APIStatusError, params: dict[str, Any]) -> str | None:
    """The optional parameter a 400 complains about, if it names one we sent."""
    named = getattr(error, "param", None)
    text = f"{error.message} {_detail(error.body)}".lower()
    for name in _OPTIONAL_PARAMS:
        if name not in params:
            continue
        if named == name or (name in text and any(w in text for w in _REFUSAL_WORDS)):
            return name
    return None


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, ``Retry-After``)."""
    headers = response.headers
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return seconds if seconds > 0 else None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time()) or None


def _detail(body: object) -> str:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("message") or "")
        return str(inner)
    return str(body) if body else ""


def _is_retryable(code: int) -> bool:
    return code in (408, 409, 429) or code >= 500


def _one_line(text: str) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _MAX_DETAIL_CHARS else flat[: _MAX_DETAIL_CHARS - 1] + "…"
