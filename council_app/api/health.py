"""/api/health: can state be persisted right now?  Answers within ~2 s even if the DB hangs."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flask import Blueprint, Response, jsonify

from council_app.api.auth import ops_allowed
from council_app.api.contract import operation
from council_app.api.schemas import Health
from council_app.providers import provider_info
from council_app.services import services
from council_app.settings import mask_url
from council_app.store import StoreError

bp = Blueprint("health", __name__, url_prefix="/api")

CHECK_TIMEOUT_S = 1.5
_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _checker() -> ThreadPoolExecutor:
    """Threads that run the ping, so a hung database cannot hold the request.  One pool
    per process: a pool inherited through fork has no threads behind it."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(max_workers=2, thread_name_prefix="health"))
        return _pool[1]


@bp.get("/health")
@operation(
    "Can state be persisted right now? (answers within ~2 s)",
    ok=Health,
    other={503: Health},
    tags=["operations"],
)
def health() -> tuple[Response, int]:
    svc = services()
    started = time.perf_counter()
    database: dict[str, object]
    try:
        _checker().submit(svc.states.ping).result(timeout=CHECK_TIMEOUT_S)
        database = {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    except FutureTimeout:
        database = {"ok": False, "error": f"no answer within {CHECK_TIMEOUT_S} s"}
    except StoreError as e:
        database = {"ok": False, "error": str(e)}
    ok = bool(database["ok"])
    if not ops_allowed():
        # OPS_TOKEN / OPS_BIND: the liveness answer stays public, the detail does not.
        return jsonify({"status": "ok" if ok else "unavailable"}), 200 if ok else 503
    stats = svc.states.stats
    body = {
        "status": "ok" if ok else "unavailable",
        "backend": svc.states.backend,
        "database_url": mask_url(svc.settings.database_url),
        "database": database,
        "provider": provider_info(svc.provider).as_dict(),  # offline stand-in? web search?
        "flusher": {
            "pending_sessions": svc.states.pending_sessions,
            "interval_ms": svc.settings.state_flush_interval_ms,
            "last_flush_at": stats.last_flush_at,
            "last_error": stats.last_error,
            "failed_flushes": stats.failed_flushes,
            "stale_writes_rejected": stats.stale_rejected,
            # Entries the database refused for their data: dropped (the others landed),
            # logged with their session; not zero means a bug or an unchecked entry point.
            "rejected": stats.rejected,
            "rejected_sessions": list(stats.rejected_sessions),
            "updates_accepted": stats.updates_accepted,
        },
    }
    return jsonify(body), 200 if ok else 503
