"""The old server's database (``users`` / ``sessions`` / ``session_state``), read as a source.

Three places hold it (see /work/shared/LEGACY_STATE.md and the README section "Moving from
the old server"): a separate SQLite file (read through SQLite's backup API into a private
temporary copy, so the ``-wal`` file's commits are included and the original is never
written), the target PostgreSQL database itself, or our own embedded SQLite file (in both
of those, revision 0000 has renamed the tables to ``legacy_*``).  Whatever the place, the
rows come out as ``LegacyRow``s for ``source``: the owner is ``users.external_id`` (never
``users.id``), ``is_deleted`` becomes a deletion time, cost and tokens ride along.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, create_engine, inspect, text

from council_app.migration.legacy_db import LegacyDbError, LegacyRow, _str, _time

LEGACY_PREFIX = "legacy_"
# What revision 0000 renames (children first): the names --drop-legacy drops.
LEGACY_TABLES = (
    ("session_state", "legacy_session_state"),
    ("sessions", "legacy_sessions"),
    ("users", "legacy_users"),
)
_CHUNK = 500


def old_server_prefix(conn: Connection) -> str | None:
    """ "legacy_" when the old tables were moved aside, "" when still in place, else None."""
    insp = inspect(conn)
    for prefix in (LEGACY_PREFIX, ""):
        table = f"{prefix}sessions"
        if insp.has_table(table):
            cols = {c["name"] for c in insp.get_columns(table)}
            if "is_deleted" in cols and "deleted_at" not in cols:
                return prefix
    return None


class OldServerDb:
    """Read-only view of the old server's three tables on an open connection."""

    def __init__(
        self,
        conn: Connection,
        prefix: str,
        label: str,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._conn = conn
        self.label = label
        self._on_close = on_close
        self._pg = conn.dialect.name == "postgresql"
        insp = inspect(conn)
        self._users = f"{prefix}users" if insp.has_table(f"{prefix}users") else None
        self._sessions = f"{prefix}sessions"
        self._state = f"{prefix}session_state" if insp.has_table(f"{prefix}session_state") else None

    # -- construction from a file --------------------------------------------------------

    @classmethod
    def from_sqlite_file(cls, path: Path) -> OldServerDb | None:
        """A private copy of the file made by SQLite's backup API (WAL commits included);
        None when the file is not the old server's database."""
        workdir = Path(tempfile.mkdtemp(prefix="council-legacy-"))
        copy = workdir / "copy.db"
        try:
            backup_sqlite(path, copy)
        except sqlite3.Error as e:
            shutil.rmtree(workdir, ignore_errors=True)
            raise LegacyDbError(f"{path}: cannot read it through SQLite ({e})") from e
        engine = create_engine(f"sqlite:///{copy}")
        conn = engine.connect()

        def cleanup() -> None:
            conn.close()
            engine.dispose()
            shutil.rmtree(workdir, ignore_errors=True)

        prefix = old_server_prefix(conn)
        if prefix is None:
            cleanup()
            return None
        return cls(conn, prefix, str(path), cleanup)

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    # -- the interface ``source`` reads --------------------------------------------------

    def _select(self, where: str = "") -> str:
        owner = "u.external_id" if self._users else "NULL"
        join_user = f" LEFT JOIN {self._users} AS u ON u.id = s.user_id" if self._users else ""
        has_state = "t.session_id IS NOT NULL" if self._state else "0 = 1"
        state_time = "t.updated_at" if self._state else "NULL"
        join_state = f" LEFT JOIN {self._state} AS t ON t.session_id = s.id" if self._state else ""
        return (
            f"SELECT s.id, {owner}, s.question, s.status, s.current_step, s.created_at, "
            f"s.updated_at, s.is_deleted, s.last_cost_usd, s.last_total_tokens, "
            f"{has_state}, {state_time} FROM {self._sessions} AS s{join_user}{join_state}{where}"
        )

    def _orphans(self) -> str:
        """State rows without a sessions row: content with no metadata is still content."""
        text_null, time_null = "CAST(NULL AS VARCHAR)", "CAST(NULL AS TIMESTAMP)"
        return (
            f"SELECT t.session_id, {text_null}, {text_null}, {text_null}, {text_null}, "
            f"{time_null}, t.updated_at, CAST(NULL AS BOOLEAN), CAST(NULL AS FLOAT), "
            f"CAST(NULL AS INTEGER), 1 = 1, t.updated_at FROM {self._state} AS t "
            f"WHERE NOT EXISTS (SELECT 1 FROM {self._sessions} AS s WHERE s.id = t.session_id)"
        )

    def lookup(self, ids: list[str]) -> dict[str, LegacyRow]:
        found: dict[str, LegacyRow] = {}
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            marks = ", ".join(f":p{n}" for n in range(len(chunk)))
            params = {f"p{n}": sid for n, sid in enumerate(chunk)}
            sql = self._select(f" WHERE s.id IN ({marks})")
            if self._state:
                orphans = f"SELECT * FROM ({self._orphans()}) AS o WHERE o.session_id IN ({marks})"
                sql += f" UNION ALL {orphans}"
            for values in self._conn.execute(text(sql), params):
                row = _row(values)
                found[row.session_id] = row
        return found

    def iter_rows(self) -> Iterator[LegacyRow]:
        sql = self._select()
        if self._state:
            sql += f" UNION ALL {self._orphans()}"
        rows = self._conn.execution_options(yield_per=_CHUNK).execute(text(sql + " ORDER BY 1"))
        for values in rows:
            if values[0] is not None:
                yield _row(values)

    def state_bytes(self, session_id: str) -> bytes | None:
        if not self._state:
            return None
        cast = "state::text" if self._pg else "CAST(state AS BLOB)"
        value = self._conn.execute(
            text(f"SELECT {cast} FROM {self._state} WHERE session_id = :sid"), {"sid": session_id}
        ).scalar()
        if isinstance(value, str):
            return value.encode()
        return value if isinstance(value, bytes) else None


def _row(values: Any) -> LegacyRow:
    (sid, owner, question, status, step, created, updated, deleted, cost, tokens, has_state,
     state_time) = values  # fmt: skip
    updated_at = _time(updated)
    return LegacyRow(
        session_id=str(sid),
        user_id=_str(owner, 320),
        question=_str(question, None),
        status=_str(status, 32),
        current_step=_str(step, 32),
        created_at=_time(created),
        updated_at=updated_at,
        deleted_at=(updated_at or datetime.now(UTC)) if _truthy(deleted) else None,
        has_state=bool(has_state),
        cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool)
        else None,
        total_tokens=int(tokens) if isinstance(tokens, int) and not isinstance(tokens, bool)
        else None,
        state_updated_at=_time(state_time),
        old_server=True,
    )  # fmt: skip


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "t", "yes")
    return bool(value)


def backup_sqlite(source: Path, dest: Path) -> None:
    """Copy an SQLite database with SQLite's online backup API: the source is opened
    read-only (its ``-wal`` commits are seen, nothing is written to it)."""
    uri = f"file:{quote(str(Path(source).resolve()))}?mode=ro"
    src = sqlite3.connect(uri, uri=True)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
