"""What the migration writes: one statement per batch into ``session_state`` and ``sessions``.

The batch travels as a single JSON array parameter (the documents are spliced in as the
exact text read from disk, never re-serialised) and PostgreSQL unpacks it with
``jsonb_to_recordset``.  Comparison happens in the database with jsonb equality, which
ignores key order and whitespace: that is the canonical form of "unchanged".  The row a
reader sees is ``state`` with ``progress`` overlaid (``overlay_hot``), so that is what a
file is compared with.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, text

from council_app.migration.source import Item
from council_app.store.base import overlay_hot

# Outcomes of a migrate batch, as reported.
MIGRATED = "migrated"
UPDATED = "updated"
UNCHANGED = "unchanged"
SKIPPED = "skipped"
FAILED = "failed"
# Outcomes of a verify batch.
MATCH = "match"
MISMATCH = "mismatch"
MISSING = "missing"

_BATCH = """
    batch AS (
        SELECT * FROM jsonb_to_recordset(CAST(:batch AS jsonb)) AS b(
            i text, s jsonb, h jsonb, r bigint, u timestamptz, uid text, q text, st text,
            cs text, c double precision, tt bigint, ca timestamptz, ua timestamptz,
            da timestamptz)
    )"""

# The row as readers see it (state with the hot column overlaid), equal to the file's?
_SAME = "(COALESCE(t.state, '{}'::jsonb) || COALESCE(t.progress, '{}'::jsonb)) = b.s"

MIGRATE_SQL = text(
    f"""
    WITH {_BATCH},
    cur AS (
        SELECT t.session_id, {_SAME} AS same
        FROM session_state AS t JOIN batch AS b ON b.i = t.session_id
    ),
    up AS (
        INSERT INTO session_state AS t (session_id, state, progress, revision, updated_at)
        SELECT b.i, b.s, b.h, b.r, b.u
        FROM batch AS b LEFT JOIN cur AS c ON c.session_id = b.i
        WHERE b.s IS NOT NULL AND (c.session_id IS NULL OR NOT c.same)
        ON CONFLICT (session_id) DO UPDATE
        SET state = EXCLUDED.state,
            progress = EXCLUDED.progress,
            revision = GREATEST(EXCLUDED.revision, t.revision + 1),
            updated_at = EXCLUDED.updated_at
        WHERE CAST(:force AS boolean) OR t.updated_at <= EXCLUDED.updated_at
        RETURNING t.session_id, (t.xmax = 0) AS inserted
    ),
    meta_new AS (
        INSERT INTO sessions (id, user_id, question, status, current_step, cost,
                              total_tokens, created_at, updated_at, deleted_at)
        SELECT b.i, b.uid, b.q, b.st, b.cs, b.c, b.tt, b.ca, b.ua, b.da FROM batch AS b
        ON CONFLICT (id) DO NOTHING
        RETURNING id
    ),
    meta_sync AS (
        UPDATE sessions AS m
        SET question = b.q, status = b.st, current_step = b.cs, cost = b.c,
            total_tokens = b.tt, updated_at = GREATEST(m.updated_at, b.ua),
            deleted_at = COALESCE(m.deleted_at, b.da)
        FROM batch AS b JOIN up ON up.session_id = b.i
        WHERE m.id = b.i
    )
    SELECT b.i,
        CASE
            WHEN up.session_id IS NOT NULL THEN
                CASE WHEN up.inserted THEN 'migrated' ELSE 'updated' END
            WHEN b.s IS NULL THEN
                CASE WHEN mn.id IS NOT NULL THEN 'migrated' ELSE 'unchanged' END
            WHEN c.same THEN
                CASE WHEN mn.id IS NOT NULL THEN 'updated' ELSE 'unchanged' END
            ELSE 'skipped'
        END
    FROM batch AS b
    LEFT JOIN up ON up.session_id = b.i
    LEFT JOIN cur AS c ON c.session_id = b.i
    LEFT JOIN meta_new AS mn ON mn.id = b.i
    """
)

# --dry-run: the same decisions as MIGRATE_SQL, read-only.
CLASSIFY_SQL = text(
    f"""
    WITH {_BATCH}
    SELECT b.i,
        CASE
            WHEN b.s IS NULL THEN CASE WHEN m.id IS NULL THEN 'migrated' ELSE 'unchanged' END
            WHEN t.session_id IS NULL THEN 'migrated'
            WHEN {_SAME} THEN CASE WHEN m.id IS NULL THEN 'updated' ELSE 'unchanged' END
            WHEN CAST(:force AS boolean) OR t.updated_at <= b.u THEN 'updated'
            ELSE 'skipped'
        END
    FROM batch AS b
    LEFT JOIN session_state AS t ON t.session_id = b.i
    LEFT JOIN sessions AS m ON m.id = b.i
    """
)

# Content, owner, deletion and cost, each against what the source says: "match",
# "missing", or "mismatch:" and the differing fields ("mismatch:owner,cost").
VERIFY_SQL = text(
    f"""
    WITH {_BATCH},
    cmp AS (
        SELECT b.i, (m.id IS NULL) AS no_meta,
            (b.s IS NOT NULL AND t.session_id IS NULL) AS no_state,
            concat_ws(',',
                CASE WHEN b.s IS NOT NULL AND t.session_id IS NOT NULL AND NOT {_SAME}
                     THEN 'content' END,
                CASE WHEN m.user_id IS DISTINCT FROM b.uid THEN 'owner' END,
                CASE WHEN (m.deleted_at IS NULL) <> (b.da IS NULL) THEN 'deletion' END,
                CASE WHEN m.cost IS DISTINCT FROM b.c THEN 'cost' END) AS diff
        FROM batch AS b
        LEFT JOIN session_state AS t ON t.session_id = b.i
        LEFT JOIN sessions AS m ON m.id = b.i
    )
    SELECT i,
        CASE
            WHEN no_meta OR no_state THEN 'missing'
            WHEN diff = '' THEN 'match'
            ELSE 'mismatch:' || diff
        END
    FROM cmp
    """
)


class QuotedJson:
    """A batch as an SQL string literal, built once from bytes.

    psycopg2 would otherwise encode a str parameter, escape it into a buffer twice its size
    and format it into the query: several copies of a batch that can be many megabytes.
    JSON text holds no NUL, and with ``standard_conforming_strings`` (set on the
    connection) a quote is the only character to double.
    """

    def __init__(self, parts: list[bytes]) -> None:
        quoted = [b"'"]
        quoted.extend(p.replace(b"'", b"''") if b"'" in p else p for p in parts)
        quoted.append(b"'")
        self.quoted = b"".join(quoted)

    def __conform__(self, proto: Any) -> QuotedJson:
        return self

    def getquoted(self) -> bytes:
        return self.quoted


def batch_param(items: Sequence[Item], revisions: Sequence[int]) -> QuotedJson:
    """The JSON array for ``_BATCH``: each document's own bytes spliced in, unparsed."""
    parts = [b"["]
    for n, (item, revision) in enumerate(zip(items, revisions, strict=True)):
        m = item.meta
        head = orjson.dumps(
            {
                "i": item.session_id,
                "r": revision,
                "u": _iso(item.compare_at),
                "uid": m.user_id,
                "q": m.question,
                "st": m.status,
                "cs": m.current_step,
                "c": m.cost_usd,
                "tt": m.total_tokens,
                "ca": _iso(m.created_at),
                "ua": _iso(m.updated_at),
                "da": _iso(m.deleted_at) if m.deleted_at else None,
                "h": None,
            }
        )
        # head ends with `"h":null}`: put the hot keys and the document in their place.
        parts += [b"," if n else b"", head[:-5], item.hot_json, b',"s":']
        parts += [item.state_json or b"null", b"}"]
    parts.append(b"]")
    return QuotedJson(parts)


def _iso(value: datetime) -> str:
    return value.isoformat()


def run_batch(
    conn: Connection, sql: Any, items: Sequence[Item], revisions: Sequence[int], force: bool
) -> dict[str, str]:
    """Execute one batch statement; the caller owns the transaction. Returns id -> outcome."""
    params: dict[str, Any] = {"batch": batch_param(items, revisions)}
    if sql is not VERIFY_SQL:
        params["force"] = force
    return {row[0]: row[1] for row in conn.execute(sql, params)}


def prepare_connection(conn: Connection) -> None:
    """Session settings the batches rely on: UTF-8 bytes and plain string literals.

    Both are parameters PgBouncer tracks per client, so they are safe in transaction
    pooling; nothing else is set for the session (a statement_timeout would leak to other
    clients of the same server connection)."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    dbapi.set_client_encoding("UTF8")
    conn.exec_driver_sql("SET standard_conforming_strings = on")
    conn.commit()


def tables_exist(conn: Connection) -> bool:
    found = conn.execute(
        text(
            "SELECT to_regclass('session_state') IS NOT NULL "
            "AND to_regclass('sessions') IS NOT NULL"
        )
    ).scalar()
    return bool(found)


@dataclass(slots=True)
class DbState:
    """A stored session as ``PostgresStore.load`` returns it, for --export."""

    session_id: str
    state: dict[str, Any]
    updated_at: datetime


def iter_db_states(conn: Connection, chunk: int = 200) -> Iterator[DbState]:
    """Every stored state, streamed with a server-side cursor, hot keys overlaid."""
    result = conn.execution_options(stream_results=True, yield_per=chunk).execute(
        text(
            "SELECT session_id, state::text, progress::text, updated_at FROM session_state "
            "ORDER BY session_id"
        )
    )
    for sid, state_text, progress_text, updated_at in result:
        state = orjson.loads(state_text) if state_text else {}
        if not isinstance(state, dict):
            state = {}
        progress = orjson.loads(progress_text) if progress_text else None
        yield DbState(sid, overlay_hot(state, progress if isinstance(progress, dict) else None),
                      updated_at)  # fmt: skip


def iter_tombstones(conn: Connection) -> Iterator[tuple[str, datetime]]:
    """Sessions deleted on PostgreSQL whose state is gone (hard delete): id, deleted_at."""
    result = conn.execution_options(stream_results=True, yield_per=1000).execute(
        text(
            "SELECT m.id, m.deleted_at FROM sessions AS m WHERE m.deleted_at IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM session_state AS t WHERE t.session_id = m.id) "
            "ORDER BY m.id"
        )
    )
    yield from ((sid, deleted_at) for sid, deleted_at in result)
