"""The pre-PostgreSQL SQLite database, opened read-only and reflected.

Its schema was never documented, so the ``sessions`` table is reflected and only the
columns it actually has are read (``id``, ``user_id``, ``question``, ``status``,
``current_step``, ``created_at``, ``updated_at``, ``deleted_at``, ``state``).  Values of the
wrong type are treated as absent rather than failing the session: the state document is
what matters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from council_app.settings import DEFAULT_SQLITE_URL
from council_app.store.legacy_files import parse_timestamp

_META_COLUMNS = (
    "user_id",
    "question",
    "status",
    "current_step",
    "created_at",
    "updated_at",
    "deleted_at",  # the embedded backend keeps a hard-deleted session's row as a tombstone
)
_KEY_COLUMNS = ("id", "session_id")


class LegacyDbError(Exception):
    """The legacy database named on the command line cannot be used (one-line reason)."""


@dataclass(slots=True)
class LegacyRow:
    session_id: str
    user_id: str | None = None
    question: str | None = None
    status: str | None = None
    current_step: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None
    has_state: bool = False
    # Hot keys the embedded backend flushed to SQLite after its last state.json write.
    progress: str | None = None
    # The old server's database (old_server.py): running cost and tokens, and when its
    # session_state row was written (against a state.json's updated_at: newer wins).
    cost_usd: float | None = None
    total_tokens: int | None = None
    state_updated_at: datetime | None = None
    old_server: bool = False  # user_id is users.external_id of the old server's database


class LegacyDb:
    """Read-only access to a legacy ``sessions`` table (``mode=ro``: the file is never written)."""

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.label = label
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            # Bad UTF-8 in a metadata column must not stop the run (the state is read as bytes).
            conn.text_factory = lambda b: b.decode("utf-8", "replace")
            return conn

        self._engine = create_engine("sqlite://", creator=connect)
        self._conn: Connection = self._engine.connect()
        try:
            found = {c["name"] for c in inspect(self._conn).get_columns("sessions")}
        except SQLAlchemyError as e:
            self.close()
            raise LegacyDbError(f"{label}: cannot read it ({_first_line(e)})") from e
        key = next((k for k in _KEY_COLUMNS if k in found), None)
        if key is None:
            self.close()
            raise LegacyDbError(f"{label}: no sessions table with an id column")
        self._key = key
        self._columns = [c for c in _META_COLUMNS if c in found]
        self._has_state = "state" in found
        try:
            inspector = inspect(self._conn)
            progress_cols = (
                {c["name"] for c in inspector.get_columns("session_state")}
                if "session_state" in inspector.get_table_names()
                else set()
            )
        except SQLAlchemyError:
            progress_cols = set()
        self._has_progress = {"session_id", "progress"} <= progress_cols

    @classmethod
    def open(cls, url: str | None) -> LegacyDb | None:
        """The database at ``url``; without one, the embedded default's file if present.

        An explicit URL that does not name an existing SQLite file raises LegacyDbError;
        the default simply yields None when there is no file (or no sessions table).
        """
        explicit = url is not None
        path = sqlite_file(url, explicit)
        if path is None:
            return None
        try:
            return cls(path, str(path))
        except LegacyDbError:
            if explicit:
                raise
            return None

    def close(self) -> None:
        self._conn.close()
        self._engine.dispose()

    def _select(self) -> str:
        cols = [f"s.{_q(c)}" for c in (self._key, *self._columns)]
        state = 's."state" IS NOT NULL' if self._has_state else "0"
        if not self._has_progress:
            return f"SELECT {', '.join(cols)}, {state}, NULL FROM sessions AS s"
        return (
            f"SELECT {', '.join(cols)}, {state}, CAST(p.progress AS TEXT) FROM sessions AS s "
            f"LEFT JOIN session_state AS p ON p.session_id = s.{_q(self._key)}"
        )

    def _row(self, values: tuple[Any, ...]) -> LegacyRow:
        data = dict(zip([self._key, *self._columns], values[:-2], strict=True))
        return LegacyRow(
            session_id=str(data[self._key]),
            user_id=_str(data.get("user_id"), 320),
            question=_str(data.get("question"), None),
            status=_str(data.get("status"), 32),
            current_step=_str(data.get("current_step"), 32),
            created_at=_time(data.get("created_at")),
            updated_at=_time(data.get("updated_at")),
            deleted_at=_time(data.get("deleted_at")),
            has_state=bool(values[-2]),
            progress=values[-1] if isinstance(values[-1], str) else None,
        )

    def lookup(self, ids: list[str]) -> dict[str, LegacyRow]:
        """Metadata rows for these ids (the state column is not read here)."""
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        sql = f"{self._select()} WHERE s.{_q(self._key)} IN ({marks})"
        rows = self._conn.exec_driver_sql(sql, tuple(ids))
        return {r.session_id: r for r in map(self._row, rows)}

    def iter_rows(self) -> Iterator[LegacyRow]:
        """Every row's metadata, streamed from the cursor."""
        result = self._conn.exec_driver_sql(f"{self._select()} ORDER BY s.{_q(self._key)}")
        for values in result:
            if values[0] is not None:
                yield self._row(values)

    def state_bytes(self, session_id: str) -> bytes | None:
        """The legacy ``state`` column as stored (bytes: its encoding is checked later)."""
        if not self._has_state:
            return None
        value = self._conn.exec_driver_sql(
            f'SELECT CAST("state" AS BLOB) FROM sessions WHERE {_q(self._key)} = ?', (session_id,)
        ).scalar()
        return value if isinstance(value, bytes) else None


def sqlite_file(url: str | None, explicit: bool) -> Path | None:
    """The file an ``--sqlite-url`` names (the embedded default's without one).

    A URL that is not ``sqlite:///path`` raises LegacyDbError; a missing file raises only
    when the URL was given explicitly, else there is simply no file (None)."""
    raw = url or DEFAULT_SQLITE_URL
    try:
        parsed = make_url(raw)
    except ArgumentError:
        raise LegacyDbError(f"--sqlite-url {raw!r} is not a database URL") from None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        raise LegacyDbError(f"--sqlite-url must be sqlite:///path (got {raw!r})")
    path = Path(parsed.database)
    if not path.is_file():
        if explicit:
            raise LegacyDbError(f"--sqlite-url: no such file {path}")
        return None
    return path


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _str(value: Any, limit: int | None) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value if limit is None or len(value) <= limit else None


def _time(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return parse_timestamp(value)


def _first_line(e: Exception) -> str:
    orig = getattr(e, "orig", None) or e
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__
