"""PostgreSQL backend: the document in JSONB, hot keys in their own small JSONB column."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, create_engine, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from council_app.settings import Settings
from council_app.store import legacy_files, schema_versions
from council_app.store.base import (
    ProgressWrite,
    RevisionConflict,
    SessionRow,
    StateStore,
    StoredState,
    StoreError,
    StoreUnavailable,
    hot_part,
    json_text,
    meta_from_state,
    overlay_hot,
)
from council_app.store.schema import (
    GIN_INDEX_NAME,
    session_state,
    sessions,
    utcnow,
)
from council_app.store.sql_common import SqlMetadata

log = logging.getLogger(__name__)

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
        self.engine = create_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_pre_ping=True,
            pool_timeout=settings.db_connect_timeout_s,
            pool_recycle=1800,
            json_serializer=json_text,
            json_deserializer=orjson.loads,
            connect_args={
                "connect_timeout": settings.db_connect_timeout_s,
                "application_name": "agent-council",
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 2,
                "keepalives_count": 3,
            },
        )
        self._pid = os.getpid()
        self.sessions_dir = Path(settings.sessions_dir)
        self._legacy = legacy_files.LegacyIndex(self.sessions_dir)

    # -- plumbing -----------------------------------------------------------------------

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        """A transaction whose driver errors come out as backend-neutral StoreErrors."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except StoreError:
            raise
        except (OperationalError, PoolTimeout) as e:
            raise StoreUnavailable(f"PostgreSQL unavailable: {_reason(e)}") from e
        except DBAPIError as e:
            if e.connection_invalidated:
                raise StoreUnavailable(f"PostgreSQL connection lost: {_reason(e)}") from e
            raise StoreError(f"PostgreSQL error: {_reason(e)}") from e
        except SQLAlchemyError as e:
            raise StoreError(f"storage error: {_reason(e)}") from e

    def after_fork(self) -> None:
        # Keep the parent's connections open for the parent; get fresh ones here.
        self.engine.dispose(close=False)
        self._pid = os.getpid()

    def close(self) -> None:
        self.engine.dispose()

    # -- schema -------------------------------------------------------------------------

    def create_schema(self) -> None:
        with self._tx() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
            schema_versions.upgrade_to_head(conn)
        self._ensure_gin_index()

    def _ensure_gin_index(self) -> None:
        """Best effort: a failure is a warning, never a failed start-up."""
        try:
            with self._tx() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
                if self.settings.state_gin_index:
                    conn.execute(
                        text(
                            f"CREATE INDEX IF NOT EXISTS {GIN_INDEX_NAME} ON session_state "
                            "USING gin (state jsonb_path_ops)"
                        )
                    )
                else:
                    conn.execute(text(f"DROP INDEX IF EXISTS {GIN_INDEX_NAME}"))
        except StoreError as e:
            log.warning("GIN index on session_state.state not changed: %s", e)

    # -- reads --------------------------------------------------------------------------

    def load(self, session_id: str) -> StoredState | None:
        query = select(
            session_state.c.state, session_state.c.progress, session_state.c.revision
        ).where(session_state.c.session_id == session_id)
        with self._tx() as conn:
            row = conn.execute(query).first()
        if row is None:
            legacy = legacy_files.read_state(self.sessions_dir, session_id)
            return None if legacy is None else StoredState(legacy, 0)
        state = row.state if isinstance(row.state, dict) else {}
        return StoredState(overlay_hot(state, row.progress), int(row.revision))

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
                # First write of a session read from a legacy file: insert, or lose the race.
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
                self._ensure_meta_row(conn, session_id, state)
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

    def _ensure_meta_row(self, conn: Connection, session_id: str, state: dict[str, Any]) -> None:
        legacy = legacy_files.session_row(session_id, state)
        conn.execute(
            text(
                "INSERT INTO sessions (id, user_id, question, status, current_step, created_at, "
                "updated_at) VALUES (:id, :user, :q, :status, :step, :created, :updated) "
                "ON CONFLICT (id) DO NOTHING"
            ),
            {
                "id": session_id,
                "user": legacy.user_id,
                "q": legacy.question,
                "status": legacy.status,
                "step": legacy.current_step,
                "created": legacy.created_at,
                "updated": legacy.updated_at,
            },
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
        with self._tx() as conn:
            conn.execute(text("SELECT 1"))


def _reason(e: Exception) -> str:
    """The driver's first line, without SQL or parameters (they may hold user data)."""
    orig = getattr(e, "orig", None) or e
    first = str(orig).strip().splitlines()
    return first[0] if first else type(orig).__name__
