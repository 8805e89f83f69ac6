"""The GIN index on ``session_state.state`` (``STATE_GIN_INDEX``), kept in step at start.

On a large table it is built with ``CREATE INDEX CONCURRENTLY`` in a background thread: a
plain CREATE INDEX would block every flush and state write for as long as the build takes
(the first start after an upgrade builds it over every session), and start-up does not
wait for it.  A small table (a new database) gets a plain build under the schema lock.
A build that died half-way leaves an INVALID index: the next start drops it and builds
again, unless a build is still in progress (``pg_stat_progress_create_index``).
Best effort: a failure is a warning, never a failed start-up.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from council_app.store.schema import GIN_INDEX_NAME

log = logging.getLogger(__name__)

# None: no such index; else whether it is valid (an interrupted or running build is not).
_VALID = text("SELECT i.indisvalid FROM pg_index AS i WHERE i.indexrelid = to_regclass(:name)")
_BUILDING = text(
    "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_create_index "
    "WHERE index_relid = to_regclass(:name))"
)
_CREATE = text(
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {GIN_INDEX_NAME} ON session_state "
    "USING gin (state jsonb_path_ops)"
)
_DROP = text(f"DROP INDEX CONCURRENTLY IF EXISTS {GIN_INDEX_NAME}")
_CREATE_PLAIN = text(
    f"CREATE INDEX IF NOT EXISTS {GIN_INDEX_NAME} ON session_state USING gin (state jsonb_path_ops)"
)
_TABLE_BYTES = text("SELECT pg_total_relation_size(to_regclass('session_state'))")
# Below this, a plain build takes well under a second: not worth a background job.
SYNC_LIMIT_BYTES = 64 * 1024 * 1024


def ensure_at_start(engine: Engine, wanted: bool, lock_key: int) -> threading.Thread | None:
    """Make the index match ``wanted``.  Small tables (a new database, tests) are done here
    in one short transaction under the schema lock; a large table's build goes to a
    background thread (returned: join it to wait) that builds concurrently."""
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})
            valid = conn.execute(_VALID, {"name": GIN_INDEX_NAME}).scalar()
            if not wanted:
                if valid is not None:
                    conn.execute(text(f"DROP INDEX IF EXISTS {GIN_INDEX_NAME}"))
                return None
            if valid is True:
                return None
            size = conn.execute(_TABLE_BYTES).scalar() or 0
            if valid is None and size < SYNC_LIMIT_BYTES:
                conn.execute(_CREATE_PLAIN)
                return None
    except SQLAlchemyError as e:
        log.warning("GIN index on session_state.state not changed: %s", _first_line(e))
        return None
    job = threading.Thread(target=ensure, args=(engine, wanted), name="gin-index", daemon=True)
    job.start()
    return job


def ensure(engine: Engine, wanted: bool) -> None:
    try:
        with engine.connect() as plain:
            conn = plain.execution_options(isolation_level="AUTOCOMMIT")
            _apply(conn, wanted)
    except SQLAlchemyError as e:
        log.warning("GIN index on session_state.state not changed: %s", _first_line(e))


def _apply(conn: Connection, wanted: bool) -> None:
    params = {"name": GIN_INDEX_NAME}
    valid = conn.execute(_VALID, params).scalar()
    if not wanted:
        if valid is not None:
            conn.execute(_DROP)
        return
    if valid is True:
        return
    if valid is False:
        if conn.execute(_BUILDING, params).scalar():
            return  # another process is building it right now
        conn.execute(_DROP)  # left INVALID by a build that died
    conn.execute(_CREATE)
    log.info("GIN index %s on session_state.state built", GIN_INDEX_NAME)


def _first_line(e: Exception) -> str:
    orig = getattr(e, "orig", None) or e
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__
