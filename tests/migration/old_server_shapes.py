"""The old server's database, built from the tables in /work/shared/LEGACY_STATE.md, plus
its ``sessions/`` tree: every case the adoption must carry, with what must come out.

The same builder fills a real SQLite file (WAL mode) or a real PostgreSQL schema, so each
shape is proven on the real engine it arrives on.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from tests.migration.legacy_tree import BASE_TIME, make_state, session_id, write_state_file

ADMIN = "admin@example.com"  # MIGRATION_ADMIN_EXTERNAL_ID in the tests
USERS = ("alice@example.com", "bob@example.com", "carol@example.com")

_SQLITE_DDL = (
    "CREATE TABLE users (id VARCHAR NOT NULL, external_id VARCHAR NOT NULL, "
    "display_name VARCHAR, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, "
    "PRIMARY KEY (id))",
    "CREATE UNIQUE INDEX ix_users_external_id ON users (external_id)",
    "CREATE TABLE sessions (id VARCHAR NOT NULL, user_id VARCHAR NOT NULL, question TEXT "
    "NOT NULL, current_step VARCHAR NOT NULL, status VARCHAR NOT NULL, created_at DATETIME "
    "NOT NULL, updated_at DATETIME NOT NULL, is_deleted BOOLEAN NOT NULL, last_cost_usd "
    "FLOAT, last_total_tokens INTEGER, PRIMARY KEY (id), FOREIGN KEY(user_id) REFERENCES "
    "users (id))",
    "CREATE INDEX ix_sessions_user_id ON sessions (user_id)",
    "CREATE INDEX ix_sessions_is_deleted ON sessions (is_deleted)",
    "CREATE TABLE session_state (session_id VARCHAR NOT NULL, state JSON NOT NULL, "
    "updated_at DATETIME NOT NULL, PRIMARY KEY (session_id), FOREIGN KEY(session_id) "
    "REFERENCES sessions (id))",
)
_PG_DDL = (
    "CREATE TABLE users (id VARCHAR NOT NULL PRIMARY KEY, external_id VARCHAR NOT NULL, "
    "display_name VARCHAR, created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, "
    "updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL)",
    "CREATE UNIQUE INDEX ix_users_external_id ON users (external_id)",
    "CREATE TABLE sessions (id VARCHAR NOT NULL PRIMARY KEY, user_id VARCHAR NOT NULL "
    "REFERENCES users (id), question TEXT NOT NULL, current_step VARCHAR NOT NULL, "
    "status VARCHAR NOT NULL, created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, "
    "updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, is_deleted BOOLEAN NOT NULL, "
    "last_cost_usd DOUBLE PRECISION, last_total_tokens INTEGER)",
    "CREATE INDEX ix_sessions_user_id ON sessions (user_id)",
    "CREATE INDEX ix_sessions_is_deleted ON sessions (is_deleted)",
    "CREATE TABLE session_state (session_id VARCHAR NOT NULL PRIMARY KEY REFERENCES "
    "sessions (id), state JSONB NOT NULL, updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL)",
    "CREATE INDEX ix_session_state_state_gin ON session_state USING gin (state)",
)


@dataclass
class Expect:
    """What must be served for one session after the adoption."""

    owner: str
    verdict: str  # the chairman_verdict of the winning copy: proves which content won
    source: str  # "database" / "state.json"
    deleted: bool = False
    cost: float | None = None
    tokens: int | None = None


@dataclass
class OldShape:
    sessions_dir: Path
    expect: dict[str, Expect] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # id -> words of the reason
    wal_only: list[str] = field(default_factory=list)
    user_ids: dict[str, str] = field(default_factory=dict)  # external_id -> users.id

    @property
    def in_count(self) -> int:
        return len(self.expect) + len(self.failed)

    def served(self) -> dict[str, Expect]:
        return {sid: e for sid, e in self.expect.items() if not e.deleted}

    def deleted(self) -> dict[str, Expect]:
        return {sid: e for sid, e in self.expect.items() if e.deleted}


def _ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")


def _state(
    sid: str, verdict: str, updated: datetime, user: str | None, cost: float, tokens: int = 0
) -> dict:
    """A document whose cost and tokens agree with its row, as the old server kept them."""
    state = make_state(sid, size=3_000, user=user)
    state["chairman_verdict"] = verdict
    state["updated_at"] = updated.isoformat()
    state["tokens"]["total_cost_usd"] = cost
    state["tokens"]["total_tokens"] = tokens
    return state


class _Writer:
    def __init__(self, conn: sa.Connection, pg: bool) -> None:
        self.conn = conn
        self.pg = pg

    def user(self, external: str) -> str:
        uid = str(uuid.uuid4())
        self.conn.execute(
            sa.text(
                "INSERT INTO users (id, external_id, display_name, created_at, updated_at) "
                "VALUES (:i, :e, :d, :t, :t)"
            ),
            {"i": uid, "e": external, "d": external.split("@")[0], "t": _ts(BASE_TIME)},
        )
        return uid

    def session(
        self, sid: str, uid: str, state: dict | None, *, deleted: bool = False,
        cost: float | None = None, tokens: int | None = None, state_time: datetime | None = None,
    ) -> None:  # fmt: skip
        updated = state_time or BASE_TIME + timedelta(hours=1)
        self.conn.execute(
            sa.text(
                "INSERT INTO sessions (id, user_id, question, current_step, status, created_at, "
                "updated_at, is_deleted, last_cost_usd, last_total_tokens) VALUES (:i, :u, :q, "
                "'complete', 'verdict_complete', :c, :up, :d, :cost, :tok)"
            ),
            {"i": sid, "u": uid, "q": f"question of {sid}", "c": _ts(BASE_TIME),
             "up": _ts(updated), "d": deleted, "cost": cost, "tok": tokens},
        )  # fmt: skip
        if state is not None:
            cast = "CAST(:s AS jsonb)" if self.pg else ":s"
            self.conn.execute(
                sa.text(
                    f"INSERT INTO session_state (session_id, state, updated_at) "
                    f"VALUES (:i, {cast}, :t)"
                ),
                {"i": sid, "s": orjson.dumps(state).decode(), "t": _ts(updated)},
            )


def build_old_server(engine: sa.Engine, sessions_dir: Path) -> OldShape:
    """The old server's tables and rows (and its state.json files) in ``engine``'s database."""
    pg = engine.dialect.name == "postgresql"
    shape = OldShape(sessions_dir)
    sessions_dir.mkdir(parents=True, exist_ok=True)
    early, late = BASE_TIME + timedelta(hours=1), BASE_TIME + timedelta(hours=3)
    with engine.begin() as conn:
        for ddl in _PG_DDL if pg else _SQLITE_DDL:
            conn.execute(sa.text(ddl))
        w = _Writer(conn, pg)
        alice, bob, carol = (w.user(u) for u in USERS)
        shape.user_ids = dict(zip(USERS, (alice, bob, carol), strict=True))

        # Only in the database; its document names the internal users.id as user_id.
        sid = session_id(1)
        w.session(
            sid, alice, _state(sid, "db only", early, alice, 0.11, 111), cost=0.11, tokens=111
        )
        shape.expect[sid] = Expect(USERS[0], "db only", "database", cost=0.11, tokens=111)
        # A state.json newer than the database row: the file wins.
        sid = session_id(2)
        w.session(sid, bob, _state(sid, "stale db", early, None, 0.2, 200), cost=0.2, tokens=200,
                  state_time=early)  # fmt: skip
        write_state_file(sessions_dir, sid, _state(sid, "newer file", late, None, 0.25, 250))
        shape.expect[sid] = Expect(USERS[1], "newer file", "state.json", cost=0.25, tokens=250)
        # A state.json older than the database row: the database wins.
        sid = session_id(3)
        w.session(sid, carol, _state(sid, "newer db", late, None, 0.3, 300), cost=0.3, tokens=300,
                  state_time=late)  # fmt: skip
        write_state_file(sessions_dir, sid, _state(sid, "stale file", early, None, 0.1, 100))
        shape.expect[sid] = Expect(USERS[2], "newer db", "database", cost=0.3, tokens=300)
        # Soft-deleted, with cost and tokens.
        sid = session_id(4)
        w.session(sid, alice, _state(sid, "deleted", early, None, 0.42, 4242), deleted=True,
                  cost=0.42, tokens=4242)  # fmt: skip
        shape.expect[sid] = Expect(USERS[0], "deleted", "database", True, 0.42, 4242)
        # Metadata and no state anywhere: must be reported failed, never "migrated".
        sid = session_id(5)
        w.session(sid, bob, None, cost=0.5, tokens=500)
        shape.failed[sid] = "no state"
        # No owner (its users row is gone): the admin user of MIGRATION_ADMIN_EXTERNAL_ID.
        sid = session_id(6)
        if pg:
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        w.session(sid, "no-such-user", _state(sid, "orphan owner", early, None, 0.06, 66),
                  cost=0.06)  # fmt: skip
        if pg:
            conn.execute(sa.text("SET LOCAL session_replication_role = origin"))
        shape.expect[sid] = Expect(ADMIN, "orphan owner", "database", cost=0.06, tokens=66)
        # Only a state.json (the oldest shape), owner in the file.
        sid = session_id(7)
        write_state_file(
            sessions_dir, sid, _state(sid, "file only", early, "dave@example.com", 0.07, 77)
        )
        shape.expect[sid] = Expect(
            "dave@example.com", "file only", "state.json", cost=0.07, tokens=77
        )
    return shape


def add_wal_sessions(path: Path, shape: OldShape, count: int = 2) -> sqlite3.Connection:
    """Commit ``count`` more sessions that stay in the ``-wal`` file (no checkpoint): the
    returned writer must stay open for as long as the test wants them there."""
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    uid = shape.user_ids[USERS[2]]
    for n in range(count):
        sid = session_id(100 + n)
        state = _state(sid, f"wal {n}", BASE_TIME + timedelta(hours=2), None, 0.9, 900)
        writer.execute("BEGIN")
        writer.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, 'complete', 'verdict_complete', ?, ?, 0, "
            "0.9, 900)",
            (sid, uid, f"question of {sid}", _ts(BASE_TIME), _ts(BASE_TIME)),
        )
        writer.execute(
            "INSERT INTO session_state VALUES (?, ?, ?)",
            (sid, orjson.dumps(state).decode(), _ts(BASE_TIME + timedelta(hours=2))),
        )
        writer.execute("COMMIT")
        shape.expect[sid] = Expect(USERS[2], f"wal {n}", "database", cost=0.9, tokens=900)
        shape.wal_only.append(sid)
    return writer


def old_sqlite_file(path: Path, sessions_dir: Path) -> OldShape:
    """The old server's ``agent_council.db`` in WAL mode, checkpointed (WAL rows: see above)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        return build_old_server(engine, sessions_dir)
    finally:
        engine.dispose()


def main_file_has(path: Path, sid: str) -> bool:
    """Whether the main database file alone (no -wal) holds the session: copy only it."""
    probe = path.with_name("probe-main-only.db")
    probe.write_bytes(path.read_bytes())
    try:
        conn = sqlite3.connect(probe)
        try:
            return (
                conn.execute("SELECT count(*) FROM sessions WHERE id = ?", (sid,)).fetchone()[0]
                == 1
            )
        finally:
            conn.close()
    finally:
        probe.unlink()
        for extra in ("-wal", "-shm"):
            Path(str(probe) + extra).unlink(missing_ok=True)


def expected_fields(e: Expect) -> dict[str, Any]:
    return {"owner": e.owner, "verdict": e.verdict, "deleted": e.deleted}
