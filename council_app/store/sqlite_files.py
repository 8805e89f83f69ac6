"""Embedded default: SQLite for metadata, revisions and hot keys; one state.json per session.

Writers take SQLite's write lock first (``BEGIN IMMEDIATE``), then write the file, so a
compare-and-set on the revision holds across gunicorn workers too.  WAL mode lets readers
go on meanwhile, and the busy timeout makes writers wait instead of failing with
"database is locked".
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, bindparam, create_engine, event, func, insert, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from council_app.settings import Settings
from council_app.store import legacy_files, schema_versions
from council_app.store.base import (
    ProgressWrite,
    RevisionConflict,
    SessionRow,
    StateStore,
    StoreDataError,
    StoredState,
    StoreError,
    StoreUnavailable,
    deep_merge,
    hot_part,
    json_text,
    meta_from_state,
    overlay_hot,
    progress_applies,
    refused_data,
)
from council_app.store.schema import session_state, sessions, utcnow
from council_app.store.sql_common import SqlMetadata

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000


class _Stored(NamedTuple):
    session_id: str
    progress: Any
    revision: int


def _install_sqlite_pragmas(engine: Any) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


class SqliteFileStore(SqlMetadata, StateStore):
    backend = "sqlite"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions_dir = Path(settings.sessions_dir)
        self.engine = create_engine(
            settings.database_url,
            json_serializer=json_text,
            json_deserializer=orjson.loads,
        )
        _install_sqlite_pragmas(self.engine)
        self._writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        try:
            with (self._writer if write else self.engine).begin() as conn:
                yield conn
        except StoreError:
            raise
        except OperationalError as e:
            raise StoreUnavailable(f"SQLite unavailable: {e.orig or e}") from e
        except (SQLAlchemyError, TypeError, ValueError) as e:
            refused = refused_data(e)
            if refused:
                raise StoreDataError(f"SQLite cannot store this: {refused}") from e
            if not isinstance(e, SQLAlchemyError):
                raise
            raise StoreError(f"SQLite error: {e.orig if hasattr(e, 'orig') else e}") from e

    def after_fork(self) -> None:
        self.engine.dispose(close=False)

    def close(self) -> None:
        self.engine.dispose()

    def create_schema(self, *, adopt_legacy: bool = True) -> None:
        """Bring the schema to head under SQLite's write lock.  The old server's database
        under our file name (its working directory) is adopted here: backup copy, its
        tables moved aside, their sessions carried over (``migration.embedded``)."""
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        legacy = schema_versions.SchemaState.LEGACY
        backup = None
        if adopt_legacy:
            with self._tx() as conn:
                found = schema_versions.check(conn).state
            if found is legacy:
                from council_app.migration import embedded  # the migration's one code path

                # Before the write lock: SQLite's backup cannot read a database its own
                # connection is writing.  Racing workers may each make one; both are whole.
                backup = embedded.make_backup(self.engine.url.database or "")
        with self._tx(write=True) as conn:
            if backup is not None and schema_versions.check(conn).state is legacy:
                embedded.adopt(conn, self.settings, backup)
            else:
                schema_versions.upgrade_to_head(conn)

    # -- reads --------------------------------------------------------------------------

    def load(self, session_id: str) -> StoredState | None:
        with self._tx() as conn:
            row = conn.execute(
                select(session_state.c.progress, session_state.c.revision).where(
                    session_state.c.session_id == session_id
                )
            ).first()
            legacy_text = None
            # No row: a file alone is LegacyFileFallback's business, not this backend's.
            state = None if row is None else legacy_files.read_state(self.sessions_dir, session_id)
            if state is None:
                legacy_text = conn.execute(
                    select(sessions.c.state).where(sessions.c.id == session_id)
                ).scalar()
        if state is None and legacy_text:
            try:
                parsed = orjson.loads(legacy_text)
                state = parsed if isinstance(parsed, dict) else None
            except ValueError:
                log.warning("Legacy sessions.state of %s is not valid JSON", session_id)
        if state is None:
            if row is None or not self._still_there(session_id):
                return None
            state = {}
        if row is None:
            return StoredState(state, 0)
        return StoredState(overlay_hot(state, row.progress), int(row.revision))

    def _still_there(self, session_id: str) -> bool:
        """Whether the row survives a hard delete that committed during a read.

        The read's snapshot can hold the row while the delete has already removed its
        folder: that session is gone, not empty (an empty state would answer "build the
        council first" to an /execute racing the delete).
        """
        with self._tx() as conn:
            found = conn.execute(
                select(session_state.c.session_id).where(session_state.c.session_id == session_id)
            ).first()
        return found is not None

    # -- writes -------------------------------------------------------------------------

    def create_session(self, row: SessionRow, state: dict[str, Any], revision: int) -> None:
        with self._tx(write=True) as conn:
            self._insert_session_row(conn, row, state)
            conn.execute(
                insert(session_state).values(
                    session_id=row.session_id,
                    state=None,
                    progress=hot_part(state),
                    revision=revision,
                    updated_at=row.updated_at,
                )
            )
            legacy_files.write_json_atomic(
                legacy_files.state_path(self.sessions_dir, row.session_id), state
            )

    def write_state(
        self, session_id: str, state: dict[str, Any], *, expected_revision: int, new_revision: int
    ) -> None:
        now = utcnow()
        meta = meta_from_state(state)
        with self._tx(write=True) as conn:
            stored = conn.execute(
                select(session_state.c.revision).where(session_state.c.session_id == session_id)
            ).scalar()
            if (stored or 0) != expected_revision:
                raise RevisionConflict(session_id)
            legacy_files.write_json_atomic(
                legacy_files.state_path(self.sessions_dir, session_id), state
            )
            values = {"progress": hot_part(state), "revision": new_revision, "updated_at": now}
            if stored is None:
                conn.execute(insert(session_state).values(session_id=session_id, **values))
            else:
                conn.execute(
                    update(session_state)
                    .where(session_state.c.session_id == session_id)
                    .values(**values)
                )
            meta_values = {
                "question": meta["question"],
                "status": meta["status"],
                "current_step": meta["current_step"],
                "cost": meta["cost"],
                "total_tokens": meta["total_tokens"],
                "updated_at": now,
            }
            conn.execute(update(sessions).where(sessions.c.id == session_id).values(**meta_values))

    def write_progress(self, writes: list[ProgressWrite]) -> list[str]:
        if not writes:
            return []
        ids = [w.session_id for w in writes]
        now = utcnow()
        stale: list[str] = []
        with self._tx(write=True) as conn:
            stored: dict[str, _Stored] = {
                r.session_id: _Stored(r.session_id, r.progress, r.revision)
                for r in conn.execute(
                    select(
                        session_state.c.session_id,
                        session_state.c.progress,
                        session_state.c.revision,
                    ).where(session_state.c.session_id.in_(ids))
                )
            }
            rows, metas = [], []
            for w in writes:
                current = stored.get(w.session_id)
                if current is None or not progress_applies(w, current.revision, current.progress):
                    stale.append(w.session_id)
                    continue
                merged = deep_merge(dict(current.progress or {}), w.patch)
                revision = max(current.revision, w.revision)
                rows.append(
                    {"sid": w.session_id, "progress": merged, "revision": revision, "now": now}
                )
                # Later writes in the same batch see this one.
                stored[w.session_id] = _Stored(w.session_id, merged, revision)
                metas.append(
                    {
                        "sid": w.session_id,
                        "cost": w.meta.get("cost_usd"),
                        "total_tokens": w.meta.get("total_tokens"),
                        "now": now,
                    }
                )
            if rows:
                conn.execute(_UPDATE_PROGRESS, rows)
                conn.execute(_UPDATE_META, metas)
        return stale

    def mark_deleted(self, session_id: str, *, hard: bool) -> None:
        now = utcnow()
        with self._tx(write=True) as conn:
            row = conn.execute(
                select(sessions.c.deleted_at).where(sessions.c.id == session_id)
            ).first()
            if row is not None and row.deleted_at is None:
                conn.execute(
                    update(sessions)
                    .where(sessions.c.id == session_id)
                    .values(deleted_at=now, updated_at=now)
                )
            if hard:
                conn.execute(session_state.delete().where(session_state.c.session_id == session_id))
            else:
                path = legacy_files.state_path(self.sessions_dir, session_id)
                state = legacy_files.read_state(self.sessions_dir, session_id)
                if state is not None:
                    state["deleted"] = True
                    legacy_files.write_json_atomic(path, state)
        if hard:
            # After the commit: a reader that finds the folder gone finds the row gone too
            # when it looks again (load's _still_there).
            shutil.rmtree(self.sessions_dir / session_id, ignore_errors=True)

    def ping(self) -> None:
        with self._tx() as conn:
            conn.exec_driver_sql("SELECT 1")


_UPDATE_PROGRESS = (
    update(session_state)
    .where(session_state.c.session_id == bindparam("sid"))
    .values(
        progress=bindparam("progress", type_=session_state.c.progress.type),
        revision=bindparam("revision"),
        updated_at=bindparam("now", type_=session_state.c.updated_at.type),
    )
)
_UPDATE_META = (
    update(sessions)
    .where(sessions.c.id == bindparam("sid"))
    .values(
        cost=func.coalesce(bindparam("cost"), sessions.c.cost),
        total_tokens=func.coalesce(bindparam("total_tokens"), sessions.c.total_tokens),
        updated_at=bindparam("now", type_=sessions.c.updated_at.type),
    )
)
