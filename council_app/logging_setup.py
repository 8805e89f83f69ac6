"""Text or JSON logs (LOG_FORMAT), one line per record, tagged with request and session ids.

A Filter on our handler copies the request id (``X-Request-Id`` from the caller when it is
short and plain, else a new one) and the session id of the URL onto every record made while
a request is handled, whichever logger made it, so a JSON line can be traced back to the
request and session.  Both are read from the request itself when needed, not bound in
hooks: a poll that logs nothing pays for one response header only (target 16.4).
"""

from __future__ import annotations

import logging
import os
import re
import sys

import orjson
from flask import Flask, Response, has_request_context, request

REQUEST_ID_HEADER = "X-Request-Id"
# Accept a caller's id only when it is short and plain, so it cannot forge log lines.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_ENVIRON_KEY = "council.request_id"


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` and ``session_id`` to records that do not carry them already
    (None outside a request: another thread, start-up, a run's own thread)."""

    def filter(self, record: logging.LogRecord) -> bool:
        inside = has_request_context()
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id() if inside else None
        if getattr(record, "session_id", None) is None:
            sid = (request.view_args or {}).get("session_id") if inside else None
            record.session_id = sid if isinstance(sid, str) else None
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


def request_id() -> str:
    """This request's id, decided on first use (a log line or the response header) and
    kept in the WSGI environ for the rest of the request; call it inside a request only."""
    environ = request.environ
    rid: str | None = environ.get(_ENVIRON_KEY)
    if rid is None:
        incoming = environ.get("HTTP_X_REQUEST_ID", "").strip()
        rid = incoming if _SAFE_REQUEST_ID.match(incoming) else new_request_id()
        environ[_ENVIRON_KEY] = rid
    return rid


def _echo(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = request_id()
    return response


def init_request_context(app: Flask) -> None:
    """Request ids out (``X-Request-Id``); log records find theirs through the filter."""
    app.after_request(_echo)
