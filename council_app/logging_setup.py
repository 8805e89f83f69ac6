"""Text or JSON logs (LOG_FORMAT), one line per record, tagged with request and session ids.

``init_request_context`` sets two context variables in ``before_request`` (the request id
from ``X-Request-Id`` or a new one, and the session id from the URL) and resets them in
``teardown_request``; a Filter on our handler copies them onto every record, whichever
logger made it, so a JSON line can be traced back to the request and session.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import sys

import orjson
from flask import Flask, Response, g, request

REQUEST_ID_HEADER = "X-Request-Id"
# Accept a caller's id only when it is short and plain, so it cannot forge log lines.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "council_request_id", default=None
)
session_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "council_session_id", default=None
)


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` and ``session_id`` to records that do not carry them already."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "session_id", None) is None:
            record.session_id = session_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key in ("request_id", "session_id"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(log_format: str) -> None:
    root = logging.getLogger()
    if getattr(root, "_council_configured", None) == log_format:
        return
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
        )
    handler.addFilter(RequestContextFilter())
    for old in list(root.handlers):
        if getattr(old, "_council", False):
            root.removeHandler(old)
    handler._council = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    root._council_configured = log_format  # type: ignore[attr-defined]


def new_request_id() -> str:
    """32 random hex digits (what ``uuid4().hex`` gave, without building a UUID)."""
    return os.urandom(16).hex()


def _bind() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "").strip()
    rid = incoming if _SAFE_REQUEST_ID.match(incoming) else new_request_id()
    sid = (request.view_args or {}).get("session_id")
    g.council_request_id = rid
    # Tokens, because gthread workers reuse threads: teardown puts the old values back.
    g.council_log_tokens = (
        request_id_var.set(rid),
        session_id_var.set(sid if isinstance(sid, str) else None),
    )


def _echo(response: Response) -> Response:
    rid = g.get("council_request_id")
    if rid:
        response.headers[REQUEST_ID_HEADER] = rid
    return response


def _unbind(_exc: BaseException | None) -> None:
    tokens = g.pop("council_log_tokens", None)
    if tokens is None:
        return
    rid_token, sid_token = tokens
    try:
        session_id_var.reset(sid_token)
        request_id_var.reset(rid_token)
    except ValueError:  # set in another context (should not happen); just clear
        session_id_var.set(None)
        request_id_var.set(None)


def init_request_context(app: Flask) -> None:
    """Request ids in and out (``X-Request-Id``) and per-request log context."""
    app.before_request_funcs.setdefault(None, []).insert(0, _bind)
    app.after_request(_echo)
    app.teardown_request(_unbind)
