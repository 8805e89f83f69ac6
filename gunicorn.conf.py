"""Gunicorn settings and hooks (used by the Procfile, `make run` and the README).

Works with and without --preload: the flusher thread starts lazily once per process id,
the inherited engine is disposed after fork, and each worker flushes pending progress on
its way out.
"""

from __future__ import annotations

import os
import sys

bind = os.environ.get("BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
# Long enough for the final flush (one flush interval plus a database round trip) and for
# background runs' results to be written.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def _services():  # type: ignore[no-untyped-def]
    module = sys.modules.get("wsgi")
    app = getattr(module, "app", None) if module else None
    return app.extensions.get("council") if app is not None else None


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    svc = _services()  # only set when the app was preloaded in the master
    if svc is not None:
        svc.store.after_fork()


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    svc = _services()
    if svc is not None:
        svc.shutdown(timeout=max(1, graceful_timeout - 5))
