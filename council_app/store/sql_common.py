"""What both backends do the same way: queries on the ``sessions`` table and the hot read."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select

from council_app.store import legacy_files
from council_app.store.base import SessionRow, meta_from_state
from council_app.store.schema import session_state, sessions

# The columns SessionRow reads: never the legacy ``state`` text, which can hold a whole
# document in an old SQLite database and would make these reads grow with it.
_ROW_COLUMNS = (
    sessions.c.id,
    sessions.c.user_id,
    sessions.c.question,
    sessions.c.status,
    sessions.c.current_step,
    sessions.c.cost,
    sessions.c.total_tokens,
    sessions.c.created_at,
    sessions.c.updated_at,
    sessions.c.deleted_at,
)

# Built once: the hot path (/status) should not rebuild and re-key a statement per poll.
_GET_SESSION = select(*_ROW_COLUMNS).where(sessions.c.id == bindparam("sid"))
_LOAD_HOT = (
    select(*_ROW_COLUMNS, session_state.c.progress)
    .select_from(sessions.outerjoin(session_state, session_state.c.session_id == sessions.c.id))
    .where(sessions.c.id == bindparam("sid"))
)
_RUNNING = select(sessions.c.id).where(
    sessions.c.status.in_(("executing", "reviewing")), sessions.c.deleted_at.is_(None)
)


class SqlMetadata:
    """Mixed into each backend; it provides ``_tx`` and ``sessions_dir``."""

    sessions_dir: Path
    _legacy: legacy_files.LegacyIndex

    def _tx(self, write: bool = False) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def get_session(self, session_id: str) -> SessionRow | None:
        with self._tx() as conn:
            row = conn.execute(_GET_SESSION, {"sid": session_id}).first()
        if row is not None:
            return SessionRow.from_db(row)
        legacy = legacy_files.read_state(self.sessions_dir, session_id)
        return None if legacy is None else legacy_files.session_row(session_id, legacy)

    def list_sessions(self, user_id: str, limit: int, offset: int) -> list[SessionRow]:
        query = (
            select(*_ROW_COLUMNS)
            .where(sessions.c.user_id == user_id, sessions.c.deleted_at.is_(None))
            .order_by(sessions.c.created_at.desc(), sessions.c.id.desc())
            .limit(offset + limit)
        )
        with self._tx() as conn:
            rows = [SessionRow.from_db(r) for r in conn.execute(query)]
        return self._legacy.merge(rows, self._ids_in_db, user_id, limit, offset)

    def running_sessions(self) -> list[str]:
        with self._tx() as conn:
            return list(conn.execute(_RUNNING).scalars())

    def _ids_in_db(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        with self._tx() as conn:
            for i in range(0, len(ids), 1000):
                chunk = ids[i : i + 1000]
                found.update(
                    conn.execute(select(sessions.c.id).where(sessions.c.id.in_(chunk))).scalars()
                )
        return found

    def load_hot(self, session_id: str) -> tuple[SessionRow, dict[str, Any]] | None:
        with self._tx() as conn:
            row = conn.execute(_LOAD_HOT, {"sid": session_id}).first()
        if row is None:
            legacy = legacy_files.read_state(self.sessions_dir, session_id)
            if legacy is None:
                return None
            return legacy_files.session_row(session_id, legacy), legacy
        return SessionRow.from_db(row), dict(row.progress or {})

    @staticmethod
    def _insert_session_row(conn: Connection, row: SessionRow, state: dict[str, Any]) -> None:
        meta = meta_from_state(state)
        conn.execute(
            insert(sessions).values(
                id=row.session_id,
                user_id=row.user_id,
                question=meta["question"],
                status=meta["status"],
                current_step=meta["current_step"],
                cost=meta["cost"],
                total_tokens=meta["total_tokens"],
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
        )
