"""Gunicorn settings and hooks (used by the Procfile, `make run` and docs/OPERATIONS.md).

Works with and without --preload:

* the master sets up ``PROMETHEUS_MULTIPROC_DIR`` before anything imports prometheus_client
  (a private temp dir, removed on exit, unless the environment names one: then its old
  files are wiped at start) and drops dead workers' live gauges in ``child_exit``;
* a preloaded master closes its database connections before forking; every worker drops
  the engine it inherited by itself (``os.register_at_fork`` in ``SessionStates``) and
  starts its flusher, lease sweeper and start-up retry (``post_worker_init``);
* each worker flushes pending progress and releases its connections on its way out
  (``worker_exit``), within ``graceful_timeout``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import sys
import tempfile
from typing import Any

bind = os.environ.get("BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
# On SIGTERM a worker finishes its requests, then flushes pending progress and waits for
# its background runs to save their results (worker_exit); the master SIGKILLs whatever is
# still alive after this many seconds, so it must cover a flush retried through a short
# database outage plus the runs' hand-over.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# "-" is stdout; an empty GUNICORN_ACCESSLOG turns the access log off (load tests).
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    # Gunicorn's own lines (start-up, worker boots, access log) as JSON objects too, with
    # the request id the app echoed.
    access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "INFO", "handlers": []},
        "formatters": {"json": {"()": "council_app.logging_setup.JsonFormatter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
            "error_console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "gunicorn.error": {
                "level": "INFO",
                "handlers": ["error_console"],
                "propagate": False,
                "qualname": "gunicorn.error",
            },
            "gunicorn.access": {
                "level": "INFO",
                "handlers": ["console"],
                "propagate": False,
                "qualname": "gunicorn.access",
            },
        },
    }

# -- Prometheus multiprocess directory (master, at config load: before any import) ------

_PROM_ENV = "PROMETHEUS_MULTIPROC_DIR"
_own_prom_dir: str | None = None
if not os.environ.get(_PROM_ENV):
    _own_prom_dir = tempfile.mkdtemp(prefix="council-prometheus-")
    os.environ[_PROM_ENV] = _own_prom_dir
else:
    os.makedirs(os.environ[_PROM_ENV], exist_ok=True)


def on_starting(server: Any) -> None:
    """Wipe a configured multiprocess directory: files of a previous run would be summed.
    Add the OPS_BIND listener (after --bind is applied, so neither replaces the other): on
    it the app serves /metrics and the health detail without OPS_TOKEN (api/auth.py).
    A bad setting or an unusable database schema stops here, before any worker: one line,
    exit 3 (startup.preflight)."""
    from council_app.startup import EXIT_BOOT_ERROR, preflight

    refusal = preflight()
    if refusal:
        print(refusal, file=sys.stderr, flush=True)
        sys.exit(EXIT_BOOT_ERROR)
    ops_bind = os.environ.get("OPS_BIND", "").strip()
    if ops_bind and ops_bind not in server.cfg.bind:
        server.cfg.set("bind", [*server.cfg.bind, ops_bind])
    if _own_prom_dir is None:
        for path in glob.glob(os.path.join(os.environ[_PROM_ENV], "*.db")):
            with contextlib.suppress(OSError):
                os.remove(path)


def on_exit(server: Any) -> None:
    if _own_prom_dir is not None:
        shutil.rmtree(_own_prom_dir, ignore_errors=True)


def _services(worker: Any = None) -> Any:
    """The app's Services in this process, or None (no preloaded app in the master)."""
    app = getattr(worker, "wsgi", None) if worker is not None else None
    if app is None or not hasattr(app, "extensions"):
        module = sys.modules.get("wsgi")
        app = getattr(module, "app", None) if module else None
    return app.extensions.get("council") if app is not None else None


def when_ready(server: Any) -> None:
    """Warn about dev mode on a public address; preloaded: close the master's pooled
    connections, so no socket is shared by forks."""
    from council_app.serving import dev_mode_warning
    from council_app.settings import ConfigError, load_settings

    try:
        warning = dev_mode_warning(load_settings().auth_mode, list(server.cfg.bind))
    except ConfigError:
        warning = None  # the app reports invalid settings itself
    if warning:
        server.log.warning(warning)
    svc = _services()
    if svc is not None:
        svc.states.close()


def post_worker_init(worker: Any) -> None:
    """Start this worker's threads (flusher, lease sweeper, start-up retry) as it boots,
    not on a first request; the master (deferred below) runs none of them."""
    svc = _services(worker)
    if svc is not None:
        svc.start_background()


def worker_exit(server: Any, worker: Any) -> None:
    svc = _services(worker)
    if svc is not None:
        svc.shutdown(timeout=max(1, graceful_timeout - 5))


def child_exit(server: Any, worker: Any) -> None:
    """In the master: a dead worker's live gauges (pending, runs) leave the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, os.environ[_PROM_ENV])


# The app is built after this file is read (in the master with --preload): it must leave
# its background threads (lease sweeper: it takes runs over) to the workers.
from council_app.services import defer_background_to_workers  # noqa: E402

defer_background_to_workers()
