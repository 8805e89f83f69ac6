"""Shared helpers for the API tests: app variants, session set-up, a smart fake LLM server."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from council_app import create_app
from council_app.services import Services
from council_app.settings import Settings
from tests.providers.fake_openai import (
    Behaviour,
    FakeOpenAIServer,
    RecordedRequest,
    status,
    success,
)

__all__ = [
    "AGENTS",
    "Behaviour",
    "SmartFake",
    "assert_error",
    "built_app",
    "create",
    "execute_and_wait",
    "put_council",
    "review_and_wait",
    "services_of",
    "status",
    "success",
]

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")

AGENTS = [
    {"name": "Economist", "persona": "You are an economist who weighs costs and incentives."},
    {"name": "Engineer", "persona": "You are a pragmatic engineer focused on operations."},
    {"name": "Skeptic", "persona": "You are a skeptic who looks for risks and gaps."},
]


@contextmanager
def built_app(settings: Settings, **overrides: Any) -> Iterator[Flask]:
    """An app like tests/api/conftest.py builds, with extra Settings overrides."""
    values = asdict(settings)
    values.update(openai_api_key=None, offline_latency_ms=0, state_flush_interval_ms=50)
    values.update(overrides)
    application = create_app(values)
    application.config["TESTING"] = True
    try:
        yield application
    finally:
        application.extensions["council"].shutdown()


def services_of(app: Flask) -> Services:
    return app.extensions["council"]


def create(
    client: FlaskClient,
    question: str = "Should we adopt PostgreSQL for session state?",
    headers: dict[str, str] | None = None,
    files: list[tuple[Any, str]] | None = None,
) -> str:
    data: dict[str, Any] = {"question": question}
    if files:
        data["files"] = files
    r = client.post(
        "/api/sessions", data=data, content_type="multipart/form-data", headers=headers or {}
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.json["session_id"]


def put_council(
    client: FlaskClient,
    sid: str,
    agents: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    r = client.put(
        f"/api/sessions/{sid}/council",
        json={"council_name": "Test council", "agents": agents or AGENTS},
        headers=headers or {},
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.json


def execute_and_wait(
    client: FlaskClient, svc: Services, sid: str, force: bool = False
) -> dict[str, Any]:
    r = client.post(f"/api/sessions/{sid}/execute" + ("?force=true" if force else ""))
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.json == {"status": "accepted"}
    assert svc.workflow.join(sid, 30)
    return client.get(f"/api/sessions/{sid}/status").json


def review_and_wait(
    client: FlaskClient, svc: Services, sid: str, force: bool = False
) -> dict[str, Any]:
    r = client.post(f"/api/sessions/{sid}/peer_review" + ("?force=true" if force else ""))
    assert r.status_code == 200, r.get_data(as_text=True)
    assert svc.workflow.join(sid, 30)
    return client.get(f"/api/sessions/{sid}/status").json


TRACEBACK_MARKERS = ("Traceback", 'File "', "line ", "Error:")


def assert_error(response: Any, status_code: int, error: str | None = None) -> dict[str, Any]:
    """The response is ``status_code`` with a JSON ``{"error","message","detail"}`` body."""
    text = response.get_data(as_text=True)
    assert response.status_code == status_code, text
    assert response.mimetype == "application/json", (response.mimetype, text)
    body = response.json
    assert isinstance(body, dict), text
    for key in ("error", "message", "detail"):
        assert isinstance(body.get(key), str) and body[key], (key, body)
    assert body["detail"] == body["message"]
    if error is not None:
        assert body["error"] == error, body
    assert "Traceback" not in text and 'File "' not in text, text
    return body


# -- a fake Chat Completions server that answers by what the request is ------------------

_SPEAKER_RE = re.compile(r'You are speaking as "([^"]+)"')
_IDS_RE = re.compile(r"Score each of these proposal ids: ([0-9, ]+)\.")

# Usage reported by the fake per kind of call: (prompt_tokens, completion_tokens).
USAGE = {
    "build": (1000, 500),
    "execute": (2000, 300),
    "review": (1500, 400),
    "synthesize": (3000, 800),
}


def classify(body: Any) -> tuple[str, str]:
    """``(kind, agent)`` of a Chat Completions request built by ``workflow.prompts``."""
    messages = body.get("messages") if isinstance(body, dict) else None
    system = "\n".join(m.get("content") or "" for m in messages or [] if m.get("role") == "system")
    json_mode = (body.get("response_format") or {}).get("type") == "json_object"
    if json_mode and "design advisory councils" in system:
        return "build", "builder"
    if json_mode and "impartial reviewer" in system:
        persona = system.split("\n\n")[0]
        agent = next((a["name"] for a in AGENTS if a["persona"] == persona), "reviewer")
        return "review", agent
    if "chairman of an advisory council" in system:
        return "synthesize", "chairman"
    match = _SPEAKER_RE.search(system)
    return "execute", match.group(1) if match else "agent"


def builder_json() -> str:
    return json.dumps(
        {
            "council_name": "Fake council",
            "strategy_summary": "Three views.",
            "agents": [
                {**a, "reasoning_effort": "low", "enable_web_search": False} for a in AGENTS
            ],
        }
    )


def review_json(body: Any) -> str:
    user = "\n".join(
        m.get("content") or "" for m in body.get("messages") or [] if m.get("role") == "user"
    )
    match = _IDS_RE.search(user)
    ids = [int(x) for x in match.group(1).split(",")] if match else []
    return json.dumps(
        {
            "overall_tldr": "Solid work overall.",
            "per_proposal": [
                {
                    "proposal_id": pid,
                    "score": 1 + pid % 5,
                    "strengths": f"strong point {pid}",
                    "weaknesses": f"weak point {pid}",
                    "gaps_risks": "none",
                    "tldr": f"verdict {pid}",
                }
                for pid in ids
            ],
            "overall_ranking": ids,
        }
    )


class SmartFake(FakeOpenAIServer):
    """Answers each request by its kind: builder JSON, an answer, review JSON, a verdict.

    ``overrides`` maps ``(kind, agent)`` (agent may be ``"*"``) to a ``Behaviour`` or a
    callable returning one, to script failures for some calls only.
    """

    def __init__(self) -> None:
        super().__init__()
        self.overrides: dict[tuple[str, str], Behaviour | Callable[[Any], Behaviour]] = {}
        self.calls: list[tuple[str, str]] = []
        self._calls_lock = threading.Lock()

    def _next(self, request: RecordedRequest) -> Behaviour:
        kind, agent = classify(request.body)
        with self._calls_lock:
            self.requests.append(request)
            self.calls.append((kind, agent))
        override = self.overrides.get((kind, agent)) or self.overrides.get((kind, "*"))
        if override is not None:
            return override(request.body) if callable(override) else override
        prompt, completion = USAGE[kind]
        if kind == "build":
            text = builder_json()
        elif kind == "review":
            text = review_json(request.body)
        elif kind == "synthesize":
            text = "## Verdict: adopt it.\n\nTL;DR: adopt it."
        else:
            text = f"{agent} says: do it carefully.\n\nTL;DR: {agent} agrees."
        return success(text, prompt_tokens=prompt, completion_tokens=completion)


@contextmanager
def fake_llm_app(settings: Settings, **overrides: Any) -> Iterator[tuple[Flask, SmartFake]]:
    """An app whose provider is the real OpenAI client pointed at a ``SmartFake``."""
    with SmartFake() as fake:
        values: dict[str, Any] = {
            "openai_api_key": "test",
            "openai_base_url": fake.base_url,
            "council_model": "gpt-4o-mini",
            "llm_max_retries": 0,
            "llm_timeout_s": 10.0,
        }
        values.update(overrides)
        with built_app(settings, **values) as app:
            yield app, fake
