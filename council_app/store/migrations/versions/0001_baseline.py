"""Baseline: the schema as it was before Alembic (sessions, session_state, merge function).

A database made by that code (these tables, no alembic_version) is stamped with this
revision instead of running it; see ``schema_versions.upgrade_to_head``.

Revision ID: 0001
Revises: 0000
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = "0000"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies: later changes to schema.py must not change what this revision did.
_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)
_FILLFACTOR = 50

_PG_MERGE_FUNCTION = """
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


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(320), nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("current_step", sa.String(32), nullable=False),
        sa.Column("cost", sa.Float, nullable=True),
        sa.Column("total_tokens", sa.BigInteger, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("deleted_at", _TS, nullable=True),
        sa.Column("state", sa.Text, nullable=True),
    )
    op.create_index("ix_sessions_user_created", "sessions", ["user_id", "created_at"])
    op.create_table(
        "session_state",
        sa.Column("session_id", sa.String(128), primary_key=True),
        sa.Column("state", _JSON, nullable=True),
        sa.Column("progress", _JSON, nullable=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        postgresql_with={"fillfactor": _FILLFACTOR},
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_MERGE_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS council_jsonb_merge(jsonb, jsonb)")
    op.drop_table("session_state")
    op.drop_index("ix_sessions_user_created", table_name="sessions")
    op.drop_table("sessions")
