"""Prometheus figures: HTTP requests, the progress flusher and background runs.

Multiprocess-safe: when ``PROMETHEUS_MULTIPROC_DIR`` is set before ``prometheus_client`` is
first imported (gunicorn.conf.py does that in the master), every worker writes its own
files there and ``/metrics`` sums them, so a scrape answered by any one worker shows the
whole server.  Without it the figures live in this process (tests, ``flask run``).

The hook functions ``observe_flush`` and ``observe_run`` are what the flusher and the
workflow call; they must stay cheap and never raise.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

if TYPE_CHECKING:
    from council_app.flusher import ProgressFlusher
    from council_app.state import SessionStates

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "<unmatched>"  # endpoint label of requests no route matched (404s)

# No *_created series: they double the output and nothing here graphs them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Metrics are registered in a registry of our own, so creating several apps in one process
# (tests) never registers a name twice and nothing else's figures leak in.
REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "council_http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["endpoint", "method", "status"],
    registry=REGISTRY,
)
HTTP_ERRORS = Counter(
    "council_http_errors_total",
    "HTTP requests answered with a status of 400 or more, by route, method and status.",
    ["endpoint", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "council_http_request_duration_seconds",
    "Time from the first before_request hook to the response, by route template.",
    ["endpoint", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
FLUSH_DURATION = Histogram(
    "council_flush_duration_seconds",
    "Duration of one batched progress write (successful or not).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
FLUSH_ROWS = Histogram(
    "council_flush_rows",
    "Sessions written per successful batched progress write.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
    registry=REGISTRY,
)
FLUSHES = Counter(
    "council_flushes_total",
    "Batched progress writes, by outcome (ok or failed).",
    ["outcome"],
    registry=REGISTRY,
)
FLUSH_FAILED = Counter(
    "council_flush_failures_total",
    "Batched progress writes that failed and were put back for a retry.",
    registry=REGISTRY,
)
STALE_REJECTED = Counter(
    "council_stale_writes_rejected_total",
    "Progress writes refused because a newer revision was already stored.",
    registry=REGISTRY,
)
PENDING_SESSIONS = Gauge(
    "council_flusher_pending_sessions",
    "Sessions with progress accepted in memory and not yet written (live processes summed).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
RUNS_IN_PROGRESS = Gauge(
    "council_runs_in_progress",
    "Background runs (execute, review) in progress, live processes summed.",
    ["kind"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)

_bound_lock = threading.Lock()
_bound_flusher: weakref.ref[ProgressFlusher | SessionStates] | None = None
_stale_seen = 0  # the bound flusher's stale_rejected already counted


def multiprocess_dir() -> str | None:
    """The shared directory of multiprocess mode, or None in single-process mode."""
    return os.environ.get(MULTIPROC_ENV) or None


def bind_flusher(flusher: ProgressFlusher | SessionStates) -> None:
    """Remember the process's flusher (or the state door in front of it), whose pending
    count and stale rejections we report."""
    global _bound_flusher, _stale_seen
    with _bound_lock:
        _bound_flusher = weakref.ref(flusher)
        _stale_seen = flusher.stats.stale_rejected


def _sync_flusher() -> None:
    """Copy the bound flusher's pending count and newly rejected stale writes."""
    global _stale_seen
    flusher = _bound_flusher() if _bound_flusher is not None else None
    if flusher is None:
        return
    PENDING_SESSIONS.set(flusher.pending_sessions)
    with _bound_lock:
        stale = flusher.stats.stale_rejected
        if stale > _stale_seen:
            STALE_REJECTED.inc(stale - _stale_seen)
        _stale_seen = max(_stale_seen, stale)


def observe_flush(rows: int, seconds: float, ok: bool) -> None:
    """Called by the flusher after every batched write."""
    try:
        FLUSH_DURATION.observe(seconds)
        FLUSHES.labels("ok" if ok else "failed").inc()
        if ok:
            FLUSH_ROWS.observe(rows)
        else:
            FLUSH_FAILED.inc()
        _sync_flusher()
    except Exception:  # figures must never break a flush
        log.debug("metrics: observe_flush failed", exc_info=True)


def observe_run(kind: str, delta: int) -> None:
    """Called when a background run starts (+1) or ends (-1)."""
    try:
        RUNS_IN_PROGRESS.labels(kind).inc(delta)
    except Exception:
        log.debug("metrics: observe_run failed", exc_info=True)


def endpoint_label() -> str:
    """The route template (``/api/sessions/<session_id>/status``), never the raw path:
    raw paths carry session ids and would make one time series per session."""
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def _before() -> None:
    g.council_started = time.perf_counter()


# (endpoint, method, status) -> the request counter's, error counter's and histogram's
# series: looked up once, not three ``labels()`` calls (a lock each) on every request.
_SERIES: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}


def _series(endpoint: str, method: str, status: int) -> tuple[Any, Any, Any]:
    key = (endpoint, method, status)
    found = _SERIES.get(key)
    if found is None:
        code = str(status)
        found = (
            HTTP_REQUESTS.labels(endpoint, method, code),
            HTTP_ERRORS.labels(endpoint, method, code) if status >= 400 else None,
            HTTP_LATENCY.labels(endpoint, method),
        )
        _SERIES[key] = found  # bounded: route templates x methods x status codes
    return found


def _after(response: Response) -> Response:
    started = g.pop("council_started", None)
    try:
        requests, errors, latency = _series(endpoint_label(), request.method, response.status_code)
        requests.inc()
        if errors is not None:
            errors.inc()
        if started is not None:
            latency.observe(time.perf_counter() - started)
    except Exception:
        log.debug("metrics: request accounting failed", exc_info=True)
    return response


def init_app(app: Flask) -> None:
    """Time every request (before/after hooks) and follow this app's flusher."""
    app.before_request(_before)
    app.after_request(_after)
    svc = app.extensions.get("council")
    if svc is not None:
        bind_flusher(svc.states)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type: every live worker's figures in
    multiprocess mode, this process's otherwise."""
    _sync_flusher()
    path = multiprocess_dir()
    if path:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
