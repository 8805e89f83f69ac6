"""PostgreSQL backend: the document in JSONB, hot keys in their own small JSONB column."""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg2
from sqlalchemy import Connection, create_engine, event, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from council_app.settings import Settings
from council_app.store import gin_index, pg_deadline, schema_versions
from council_app.store.base import (
    DocumentView,
    ProgressWrite,
    RevisionConflict,
    SessionRow,
    StateStore,
    StoreDataError,
    StoredState,
    StoreError,
    StoreUnavailable,
    hot_part,
    json_text,
    meta_from_state,
    overlay_hot,
    refused_data,
)
from council_app.store.pg_hang import HangBreaker
from council_app.store.pg_views import ViewReader
from council_app.store.schema import (
    session_state,
    sessions,
    utcnow,
)
from council_app.store.sql_common import SqlMetadata

log = logging.getLogger(__name__)

ANSWER_MARGIN_S = 1.0  # past statement_timeout: a server that still answers says so first
PING_TIMEOUT_S = 1.0  # health's round trip, inside its 2 s contract
SCHEMA_TIMEOUT_MS = 600_000  # schema upgrades and index builds, under the advisory lock

# Serialises schema creation across workers and hosts (transaction-scoped: PgBouncer-safe).
_SCHEMA_LOCK_KEY = 0x436F_756E_6369_6C  # "Council"

# One statement per flush: the batch travels as one JSON parameter and is unpacked by
# PostgreSQL, the hot column is deep-merged where the patch applies (see ProgressWrite),
# and the metadata row's cost follows.  Returns the ids that were applied.
_FLUSH_SQL = text(
    """
    WITH batch AS (
        SELECT b.session_id, b.patch, b.revision, b.cost, b.total_tokens, b.run_id
        FROM jsonb_to_recordset(CAST(:batch AS jsonb)) AS b(
            session_id text, patch jsonb, revision bigint, cost double precision,
            total_tokens bigint, run_id text)
    ), applied AS (
        UPDATE session_state AS s
        SET progress = council_jsonb_merge(COALESCE(s.progress, '{}'::jsonb), b.patch),
            revision = GREATEST(s.revision, b.revision),
            updated_at = now()
        FROM batch AS b
        WHERE s.session_id = b.session_id
          AND CASE WHEN b.run_id IS NULL THEN s.revision < b.revision
                   ELSE s.progress -> 'run' ->> 'id' IS NOT DISTINCT FROM b.run_id END
        RETURNING s.session_id
    ), meta AS (
        UPDATE sessions AS m
        SET cost = COALESCE(b.cost, m.cost),
            total_tokens = COALESCE(b.total_tokens, m.total_tokens),
            updated_at = now()
        FROM batch AS b JOIN applied AS a ON a.session_id = b.session_id
        WHERE m.id = b.session_id
    )
    SELECT session_id FROM applied
    """
)


class PostgresStore(SqlMetadata, StateStore):
    backend = "postgresql"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        pg_deadline.install()
        self.engine = create_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            # No ping per checkout (a round trip on every request): a connection the
            # server dropped fails its first statement, SQLAlchemy then invalidates it and
            # every older pooled one, and reads run once more (SqlMetadata._read).
            pool_pre_ping=False,
            pool_timeout=settings.db_pool_timeout_s,
            pool_recycle=1800,
            json_serializer=json_text,
            json_deserializer=orjson.loads,
            connect_args=_connect_args(
                settings,
                settings.db_connect_timeout_s,
                answer_timeout_s(settings.db_statement_timeout_ms),
            ),
        )
        # Health's own connection: /api/health must not queue behind a busy or hung app
        # pool, and answers within its 2 s contract whatever the app's timeouts are.
        self._ping_engine = create_engine(
            settings.database_url,
            pool_size=1,
            max_overflow=2,
            pool_timeout=PING_TIMEOUT_S,
            pool_recycle=1800,
            connect_args=_connect_args(settings, PING_TIMEOUT_S, PING_TIMEOUT_S),
        )
        event.listen(self.engine, "checkin", _drop_deadline_override)
        event.listen(self.engine, "before_cursor_execute", _send_timeouts_first, retval=True)
        self._breaker = HangBreaker()
        self._pid = os.getpid()
        self._views = ViewReader()  # /summary, /results: large values as cached JSON text
        self.sessions_dir = Path(settings.sessions_dir)

    # -- plumbing -----------------------------------------------------------------------

    @contextmanager
    def _tx(self, write: bool = False, timeout_ms: int | None = None) -> Iterator[Connection]:
        """A transaction bounded in time, whose driver errors come out as StoreErrors.

        ``SET LOCAL`` puts the statement and lock timeouts on this transaction only (a
        session-level SET would leak to other clients through PgBouncer); the deadline
        connection gives up on a server that does not answer at all.  ``timeout_ms``
        raises both for the rare long transaction (schema changes)."""
        statement_ms = timeout_ms or self.settings.db_statement_timeout_ms
        lock_ms = timeout_ms or self.settings.db_lock_timeout_ms
        with self._breaker.guard(), _mapped_errors(), self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            if timeout_ms is not None and raw is not None:
                raw.answer_timeout_s = answer_timeout_s(timeout_ms)
            try:
                with conn.begin():
                    # Sent with the transaction's first statement (_send_timeouts_first):
                    # no round trip of their own, on every request.
                    info = conn.info  # kept: an invalidated connection no longer has it
                    info[_PENDING_TIMEOUTS] = (
                        f"SET LOCAL statement_timeout = {int(statement_ms)}; "
                        f"SET LOCAL lock_timeout = {int(lock_ms)}; "
                    )
                    try:
                        yield conn
                    finally:
                        info.pop(_PENDING_TIMEOUTS, None)
            finally:
                if timeout_ms is not None and raw is not None:
                    raw.__dict__.pop("answer_timeout_s", None)

    @contextmanager
    def _by_key(self) -> Iterator[Connection]:
        """A read by key in autocommit: one round trip instead of three (no BEGIN, no
        COMMIT), the cost of the hot path (/status, /summary) being round trips.  No
        ``SET LOCAL`` outside a transaction: the client-side deadline bounds the wait
        (statement timeout + margin), and a lookup by key neither runs long on the server
        nor waits for a lock."""
        with self._breaker.guard(), _mapped_errors(), self.engine.connect() as conn:
            raw: Any = conn.connection.dbapi_connection
            # psycopg2's own flag: set and cleared without a round trip (SQLAlchemy's
            # isolation_level option would send SETs), and no BEGIN is sent while it is on.
            raw.autocommit = True
            try:
                yield conn
            finally:
                if not raw.closed:
                    raw.autocommit = False

    def lift_deadline(self, conn: Connection) -> None:
        """No client-side deadline on this checked-out connection, until it is returned:
        for the migration's long batches, run by an operator who can interrupt them."""
        raw = conn.connection.dbapi_connection
        if raw is not None:
            raw.answer_timeout_s = None

    def after_fork(self) -> None:
        # Keep the parent's connections open for the parent; get fresh ones here.
        self.engine.dispose(close=False)
        self._ping_engine.dispose(close=False)
        self._breaker = HangBreaker()
        self._pid = os.getpid()

    def close(self) -> None:
        self.engine.dispose()
        self._ping_engine.dispose()

    # -- schema -------------------------------------------------------------------------

    def create_schema(self, *, adopt_legacy: bool = False) -> None:
        """Bring the schema to head under the advisory lock.  The old server's tables are
        moved aside only for the migration tool (``adopt_legacy``): at start they raise
        SchemaNotUsable, whose message names the command to run."""
        with self._tx(timeout_ms=SCHEMA_TIMEOUT_MS) as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
            schema_versions.upgrade_to_head(conn, adopt_legacy=adopt_legacy)
        self._ensure_gin_index()

    # The background job that makes the GIN index follow STATE_GIN_INDEX (join to wait).
    gin_index_job: threading.Thread | None = None

    def _ensure_gin_index(self) -> None:
        """Best effort, concurrently and in the background (store/gin_index.py): a build
        over a large table neither blocks writes nor holds up start-up."""
        self.gin_index_job = gin_index.ensure_at_start(
            self.engine, self.settings.state_gin_index, _SCHEMA_LOCK_KEY
        )

    # -- reads --------------------------------------------------------------------------

    def load(self, session_id: str) -> StoredState | None:
        query = select(
            session_state.c.state, session_state.c.progress, session_state.c.revision
        ).where(session_state.c.session_id == session_id)
        row = self._read(lambda conn: conn.execute(query).first(), by_key=True)
        if row is None:
            return None
        state = row.state if isinstance(row.state, dict) else {}
        return StoredState(overlay_hot(state, row.progress), int(row.revision))

    def read_view(
        self, session_id: str, small_keys: tuple[str, ...], raw_keys: tuple[str, ...]
    ) -> DocumentView | None:
        """The large keys come out of PostgreSQL as JSON text, never parsed here, and are
        kept per row version (``pg_views.ViewReader``)."""
        return self._views.read(
            functools.partial(self._read, by_key=True),
            session_id,
            tuple(small_keys),
            tuple(raw_keys),
        )

    # -- writes -------------------------------------------------------------------------

    def create_session(self, row: SessionRow, state: dict[str, Any], revision: int) -> None:
        with self._tx() as conn:
            self._insert_session_row(conn, row, state)
            conn.execute(
                insert(session_state).values(
                    session_id=row.session_id,
                    state=state,
                    progress=hot_part(state),
                    revision=revision,
                    updated_at=row.updated_at,
                )
            )

    def write_state(
        self, session_id: str, state: dict[str, Any], *, expected_revision: int, new_revision: int
    ) -> None:
        now = utcnow()
        meta = meta_from_state(state)
        with self._tx() as conn:
            if expected_revision == 0:
                # A session whose metadata exists without a document (LegacyFileFallback
                # adopts file-only sessions with create_session): insert, or lose the race.
                result = conn.execute(
                    text(
                        "INSERT INTO session_state (session_id, state, progress, revision, "
                        "updated_at) VALUES (:sid, CAST(:state AS jsonb), CAST(:hot AS jsonb), "
                        ":rev, :now) ON CONFLICT (session_id) DO NOTHING"
                    ),
                    {
                        "sid": session_id,
                        "state": json_text(state),
                        "hot": json_text(hot_part(state)),
                        "rev": new_revision,
                        "now": now,
                    },
                )
                if result.rowcount == 0:
                    raise RevisionConflict(session_id)
            else:
                result = conn.execute(
                    update(session_state)
                    .where(
                        session_state.c.session_id == session_id,
                        session_state.c.revision == expected_revision,
                    )
                    .values(
                        state=state, progress=hot_part(state), revision=new_revision, updated_at=now
                    )
                )
                if result.rowcount == 0:
                    raise RevisionConflict(session_id)
            conn.execute(
                update(sessions)
                .where(sessions.c.id == session_id)
                .values(
                    question=meta["question"],
                    status=meta["status"],
                    current_step=meta["current_step"],
                    cost=meta["cost"],
                    total_tokens=meta["total_tokens"],
                    updated_at=now,
                )
            )

    def write_progress(self, writes: list[ProgressWrite]) -> list[str]:
        if not writes:
            return []
        batch = [
            {
                "session_id": w.session_id,
                "patch": w.patch,
                "revision": w.revision,
                "cost": w.meta.get("cost_usd"),
                "total_tokens": w.meta.get("total_tokens"),
                "run_id": w.run_id,
            }
            for w in writes
        ]
        with self._tx() as conn:
            applied = {r[0] for r in conn.execute(_FLUSH_SQL, {"batch": json_text(batch)})}
        return [w.session_id for w in writes if w.session_id not in applied]

    def mark_deleted(self, session_id: str, *, hard: bool) -> None:
        now = utcnow()
        with self._tx() as conn:
            conn.execute(
                update(sessions)
                .where(sessions.c.id == session_id)
                .values(deleted_at=func.coalesce(sessions.c.deleted_at, now), updated_at=now)
            )
            if hard:
                conn.execute(session_state.delete().where(session_state.c.session_id == session_id))
            else:
                conn.execute(
                    update(session_state)
                    .where(session_state.c.session_id == session_id)
                    .values(
                        state=func.jsonb_set(
                            func.coalesce(session_state.c.state, text("'{}'::jsonb")),
                            text("'{deleted}'"),
                            text("'true'::jsonb"),
                        ),
                        updated_at=now,
                    )
                )

    def ping(self) -> None:
        """One round trip on health's own connection; a success also tells the app's
        transactions that the database answers again."""
        with _mapped_errors(), self._ping_engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        self._breaker.reset()


def _drop_deadline_override(dbapi_conn: Any, _record: Any) -> None:
    if dbapi_conn is not None:
        dbapi_conn.__dict__.pop("answer_timeout_s", None)


def answer_timeout_s(statement_timeout_ms: int) -> float:
    """How long to wait for any answer: the server's own timeout plus a margin, so a live
    server always reports its timeout first and only a silent one hits this."""
    return statement_timeout_ms / 1000 + ANSWER_MARGIN_S


def _connect_args(settings: Settings, connect_s: float, answer_s: float) -> dict[str, Any]:
    return {
        "connect_timeout": max(2, math.ceil(connect_s)),  # libpq's minimum; ours is exact
        "connection_factory": pg_deadline.connection_class(connect_s, answer_s),
        "application_name": "agent-council",
        "keepalives": 1,
        "keepalives_idle": settings.db_keepalives_idle_s,
        "keepalives_interval": settings.db_keepalives_interval_s,
        "keepalives_count": settings.db_keepalives_count,
    }


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """Driver errors as backend-neutral StoreErrors (a timeout or lost server: 503)."""
    try:
        yield
    except StoreError:
        raise
    except (OperationalError, PoolTimeout) as e:
        raise StoreUnavailable(f"PostgreSQL unavailable: {_reason(e)}") from e
    except DBAPIError as e:
        if e.connection_invalidated:
            raise StoreUnavailable(f"PostgreSQL unavailable, connection lost: {_reason(e)}") from e
        if isinstance(e.orig, psycopg2.DataError):
            raise StoreDataError(f"PostgreSQL refused the data: {_reason(e)}") from e
        raise StoreError(f"PostgreSQL error: {_reason(e)}") from e
    except (SQLAlchemyError, TypeError, ValueError) as e:
        refused = refused_data(e)
        if refused:
            raise StoreDataError(f"PostgreSQL cannot store this: {refused}") from e
        if not isinstance(e, SQLAlchemyError):
            raise
        raise StoreError(f"storage error: {_reason(e)}") from e


_PENDING_TIMEOUTS = "council_pending_set_local"


def _send_timeouts_first(
    conn: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> tuple[str, Any]:
    """Put a transaction's ``SET LOCAL`` timeouts in front of its first statement: one
    simple query, one round trip (psycopg2 interpolates parameters client-side and returns
    the last statement's result).  A server-side cursor (DECLARE ... FOR) cannot take a
    prefix: the timeouts go ahead of it on their own cursor."""
    prefix = conn.info.pop(_PENDING_TIMEOUTS, None)
    if not prefix:
        return statement, parameters
    if getattr(cursor, "name", None):
        with cursor.connection.cursor() as plain:
            plain.execute(prefix)
        return statement, parameters
    return prefix + statement, parameters


def _reason(e: Exception) -> str:
    """The driver's first line, without SQL or parameters (they may hold user data)."""
    orig = getattr(e, "orig", None) or e
    first = str(orig).strip().splitlines()
    return first[0] if first else type(orig).__name__
