"""What both backends do the same way: queries on the ``sessions`` table and the hot read."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, bindparam, delete, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from council_app.domain import RUNNING
from council_app.store.base import (
    HotRow,
    ListCursor,
    MemberCheckpoint,
    SessionRow,
    StoreUnavailable,
    meta_from_state,
)
from council_app.store.schema import run_members, session_state, sessions, utcnow
from council_app.store.spend_sql import SpendSql

T = TypeVar("T")

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
# The poll's read: five columns and the hot keys by a scalar subquery, which PostgreSQL
# plans and runs cheaper than the outer join (and the timestamps, the question and the
# costs are not parsed for nothing).
_LOAD_HOT = select(
    sessions.c.id,
    sessions.c.user_id,
    sessions.c.status,
    sessions.c.current_step,
    sessions.c.deleted_at,
    select(session_state.c.progress)
    .where(session_state.c.session_id == sessions.c.id)
    .scalar_subquery()
    .label("progress"),
).where(sessions.c.id == bindparam("sid"))
_RUNNING = select(sessions.c.id).where(
    sessions.c.status.in_(sorted(RUNNING)), sessions.c.deleted_at.is_(None)
)


class SqlMetadata(SpendSql):
    """Mixed into each backend; it provides ``_tx`` and ``sessions_dir``."""

    sessions_dir: Path
    backend: str

    def _tx(self, write: bool = False) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _by_key(self) -> AbstractContextManager[Connection]:
        """Where a lookup by key runs: a transaction, unless the backend has something
        cheaper (PostgreSQL: autocommit, see ``PostgresStore``)."""
        return self._tx()

    def _read(self, fn: Callable[[Connection], T], *, by_key: bool = False) -> T:
        """A read-only transaction, run a second time when its connection turned out dead.

        ``by_key``: ``fn`` runs one statement that looks rows up by key.  A single
        statement sees one snapshot and a lookup by key is short, so it needs neither a
        transaction nor server-side timeouts: the backend may run it the cheap way.

        The pool does not ping every connection it hands out (that is a round trip per
        request): a connection the server dropped meanwhile fails its first statement
        instead, SQLAlchemy invalidates it and every older one in the pool, and a read is
        safe to repeat on a fresh connection.  Still down: StoreUnavailable, as before.
        """
        run = self._by_key if by_key else self._tx
        try:
            with run() as conn:
                return fn(conn)
        except StoreUnavailable as e:
            cause = e.__cause__
            if not (isinstance(cause, DBAPIError) and cause.connection_invalidated):
                raise
        with run() as conn:
            return fn(conn)

    def get_session(self, session_id: str) -> SessionRow | None:
        row = self._read(
            lambda conn: conn.execute(_GET_SESSION, {"sid": session_id}).first(), by_key=True
        )
        return None if row is None else SessionRow.from_db(row)

    def list_sessions(
        self,
        user_id: str,
        limit: int,
        offset: int = 0,
        *,
        after: ListCursor | None = None,
        query: str | None = None,
    ) -> list[SessionRow]:
        # Served by ix_sessions_user_created (user_id, created_at): the cursor bounds the
        # index range, so a deep page reads no more rows than the first one.  ``query`` is
        # a filter over that user's range (no text index: a user has thousands of
        # sessions, not millions).
        stmt = select(*_ROW_COLUMNS).where(
            sessions.c.user_id == user_id, sessions.c.deleted_at.is_(None)
        )
        if after is not None:
            offset = 0
            stmt = stmt.where(
                # The first condition is implied by the second; spelled out, it bounds the
                # index range scanned (an OR alone is only a filter over the whole range).
                sessions.c.created_at <= after.created_at,
                or_(
                    sessions.c.created_at < after.created_at,
                    and_(
                        sessions.c.created_at == after.created_at,
                        sessions.c.id < after.session_id,
                    ),
                ),
            )
        if query:
            stmt = stmt.where(sessions.c.question.icontains(query, autoescape=True))
        stmt = stmt.order_by(sessions.c.created_at.desc(), sessions.c.id.desc()).limit(
            offset + limit
        )
        rows = self._read(lambda conn: [SessionRow.from_db(r) for r in conn.execute(stmt)])
        return rows[offset : offset + limit]

    def running_sessions(self) -> list[str]:
        with self._tx() as conn:
            return list(conn.execute(_RUNNING).scalars())

    def last_written(self, session_ids: list[str]) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        with self._tx() as conn:
            for i in range(0, len(session_ids), 1000):
                chunk = session_ids[i : i + 1000]
                query = select(sessions.c.id, sessions.c.updated_at).where(sessions.c.id.in_(chunk))
                found.update({r.id: r.updated_at for r in conn.execute(query)})
        return found

    def load_hot(self, session_id: str) -> tuple[HotRow, dict[str, Any]] | None:
        row = self._read(
            lambda conn: conn.execute(_LOAD_HOT, {"sid": session_id}).first(), by_key=True
        )
        if row is None:
            return None
        hot = HotRow(row.id, row.user_id, row.status, row.current_step, row.deleted_at)
        return hot, dict(row.progress or {})

    def load_hot_many(self, session_ids: list[str]) -> dict[str, dict[str, Any]]:
        def chunks(conn: Connection) -> dict[str, dict[str, Any]]:
            found: dict[str, dict[str, Any]] = {}
            for i in range(0, len(session_ids), 1000):
                query = select(session_state.c.session_id, session_state.c.progress).where(
                    session_state.c.session_id.in_(session_ids[i : i + 1000])
                )
                found.update({r.session_id: dict(r.progress or {}) for r in conn.execute(query)})
            return found

        return self._read(chunks)

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

    # -- run checkpoints (table run_members) ---------------------------------------------

    def put_member(self, checkpoint: MemberCheckpoint) -> None:
        dialect = postgresql if self.backend == "postgresql" else sqlite
        values = {
            "run_id": checkpoint.run_id,
            "member": checkpoint.member,
            "session_id": checkpoint.session_id,
            "step": checkpoint.step,
            "state": checkpoint.state,
            "result": checkpoint.result,
            "updated_at": utcnow(),
        }
        stmt = dialect.insert(run_members).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[run_members.c.run_id, run_members.c.member],
            set_={k: stmt.excluded[k] for k in ("state", "result", "updated_at")},
        )
        with self._tx(write=True) as conn:
            conn.execute(stmt)

    def run_members(self, run_id: str) -> list[MemberCheckpoint]:
        query = select(
            run_members.c.session_id,
            run_members.c.step,
            run_members.c.member,
            run_members.c.run_id,
            run_members.c.state,
            run_members.c.result,
        ).where(run_members.c.run_id == run_id)
        with self._tx() as conn:
            return [
                MemberCheckpoint(r.session_id, r.step, r.member, r.run_id, r.state, r.result)
                for r in conn.execute(query)
            ]

    def drop_members(self, session_id: str, keep_run_id: str | None = None) -> int:
        stmt = delete(run_members).where(run_members.c.session_id == session_id)
        if keep_run_id is not None:
            stmt = stmt.where(run_members.c.run_id != keep_run_id)
        with self._tx(write=True) as conn:
            return int(conn.execute(stmt).rowcount or 0)
