"""Tables (SQLAlchemy Core, one MetaData) shared by both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import JSON


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both backends (SQLite keeps no zone; naive values are UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData()

SESSION_STATE_FILLFACTOR = 50

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("user_id", String(320), nullable=False),
    Column("question", Text, nullable=False, default=""),
    Column("status", String(32), nullable=False, default="idle"),
    Column("current_step", String(32), nullable=False, default="input"),
    Column("cost", Float, nullable=True),  # running total in USD
    Column("total_tokens", BigInteger, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    Column("deleted_at", UTCDateTime, nullable=True),
    # Legacy: the pre-PostgreSQL server kept the whole state here.  Read by the migration only.
    Column("state", Text, nullable=True),
)
Index("ix_sessions_user_created", sessions.c.user_id, sessions.c.created_at)

session_state = Table(
    "session_state",
    metadata,
    Column("session_id", String(128), primary_key=True),
    # The whole document.  NULL for the file backend, which keeps it in state.json.
    Column("state", JSONDocument, nullable=True),
    # The hot keys (base.HOT_KEYS): small, rewritten by every progress flush.
    Column("progress", JSONDocument, nullable=True),
    Column("revision", BigInteger, nullable=False, default=0),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    # Room on each page for the new version of a row, so that progress flushes stay
    # heap-only (HOT) updates: no index is touched and the TOASTed document is not re-read
    # (see docs/BENCHMARKS.md).
    postgresql_with={"fillfactor": SESSION_STATE_FILLFACTOR},
)

# One row per finished member of a run (an agent's answer, a review, the built council,
# the verdict), written the moment it arrives: a run taken over by another worker asks the
# LLM only for members with no row.  Keyed by the run's root id, so a forced re-run never
# sees an earlier run's answers; a row costs the same whatever the session's size.
run_members = Table(
    "run_members",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("member", String(200), primary_key=True),
    Column("session_id", String(128), nullable=False),
    Column("step", String(32), nullable=False),
    Column("state", String(16), nullable=False),  # domain.MemberState
    Column("result", JSONDocument, nullable=False),  # the entry, its usage and cost
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
)
Index("ix_run_members_session", run_members.c.session_id)

GIN_INDEX_NAME = "ix_session_state_state_gin"

# Deep merge with the same rule as base.deep_merge: objects merge, anything else replaces.
PG_MERGE_FUNCTION = """
CREATE OR REPLACE FUNCTION council_jsonb_merge(target jsonb, patch jsonb)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE
    k text;
    v jsonb;
    result jsonb;
BEGIN
    IF patch IS NULL THEN
        RETURN target;
    END IF;
    IF jsonb_typeof(patch) <> 'object' OR target IS NULL OR jsonb_typeof(target) <> 'object' THEN
        RETURN patch;
    END IF;
    result := target;
    FOR k, v IN SELECT key, value FROM jsonb_each(patch) LOOP
        IF jsonb_typeof(v) = 'object' AND jsonb_typeof(result -> k) = 'object' THEN
            result := jsonb_set(result, ARRAY[k], council_jsonb_merge(result -> k, v));
        ELSE
            result := jsonb_set(result, ARRAY[k], v, true);
        END IF;
    END LOOP;
    RETURN result;
END
$fn$;
"""

# What each user spent on LLM calls per UTC day (USER_DAILY_BUDGET_USD, budget.py): one
# row per user and day, incremented in place by every priced call, so every worker and host
# sees the same figure.
user_spend = Table(
    "user_spend",
    metadata,
    Column("user_id", String(320), primary_key=True),
    Column("day", Date, primary_key=True),  # UTC
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("calls", BigInteger, nullable=False, default=0),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
)
