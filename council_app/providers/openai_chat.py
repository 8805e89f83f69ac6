"""Real provider over the Chat Completions API via the official ``openai`` client.

Only standard Chat Completions fields are sent, so the same code works with OpenAI,
OpenRouter, Ollama and vLLM. Retries with exponential backoff on 408/409/429/5xx, timeouts
and connection errors are delegated to the client's own ``max_retries``.
"""

from __future__ import annotations

import http
import logging
import time
from typing import Any

import openai

from .base import Completion, ProviderError

log = logging.getLogger(__name__)

_MAX_DETAIL_CHARS = 300


class OpenAIChatProvider:
    """``LLMProvider`` backed by any OpenAI-compatible ``/chat/completions`` endpoint."""

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
    ) -> None:
        kwargs: dict[str, Any] = {
            "api_key": api_key,
            "timeout": timeout_s,
            "max_retries": max_retries,
        }
        if base_url:
            kwargs["base_url"] = base_url
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._client = openai.OpenAI(**kwargs)

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    def close(self) -> None:
        """Release pooled HTTP connections."""
        self._client.close()

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        model: str,
        task: str,
        reasoning_effort: str | None = None,
        json_mode: bool = False,
    ) -> Completion:
        """One chat completion; raises ``ProviderError`` once the client has given up."""
        params: dict[str, Any] = {"model": model, "messages": messages}
        if reasoning_effort and reasoning_effort != "none":
            params["reasoning_effort"] = reasoning_effort
        if json_mode:
            params["response_format"] = {"type": "json_object"}
        started = time.perf_counter()
        try:
            response = self._client.chat.completions.create(**params)
        except (openai.OpenAIError, ValueError) as e:
            # ValueError: a 200 whose body is not valid JSON / not a completion.
            message = self._describe(e, model)
            log.warning("LLM call failed (task=%s): %s", task, message)
            raise ProviderError(message) from e
        duration_ms = (time.perf_counter() - started) * 1000
        text = _content(response)
        if not text:
            reason = _finish_reason(response)
            raise ProviderError(
                f"model {model!r} returned an empty answer"
                + (f" (finish_reason: {reason})" if reason else "")
            )
        usage = getattr(response, "usage", None)
        completion = Completion(
            text=text,
            model=getattr(response, "model", None) or model,
            provider=self.name,
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            duration_ms=duration_ms,
        )
        log.info(
            "LLM call ok: task=%s model=%s tokens=%d/%d in %.0f ms",
            task,
            completion.model,
            completion.input_tokens,
            completion.output_tokens,
            duration_ms,
        )
        return completion

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
            retried = (
                f" after {self.max_retries} retries"
                if _is_retryable(code) and self.max_retries
                else ""
            )
            return f"HTTP {code} {phrase} from {where}{retried}: {_one_line(detail)}"
        if isinstance(error, openai.APITimeoutError):
            return (
                f"timed out after {self.timeout_s:g} s waiting for {where} "
                f"({self.max_retries} retries)"
            )
        if isinstance(error, openai.APIConnectionError):
            cause = error.__cause__ or error
            return f"cannot connect to {where}: {_one_line(str(cause) or type(cause).__name__)}"
        if isinstance(error, ValueError):
            return f"malformed response from {where}: {_one_line(str(error))}"
        return f"request to {where} failed: {_one_line(str(error) or type(error).__name__)}"


def _content(response: Any) -> str:
    choices = getattr(response, "choices", None) or []
    if not choices:
        return ""
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    return content.strip() if isinstance(content, str) else ""


def _finish_reason(response: Any) -> str:
    choices = getattr(response, "choices", None) or []
    return str(getattr(choices[0], "finish_reason", "") or "") if choices else ""


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
