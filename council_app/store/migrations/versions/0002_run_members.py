"""run_members: one row per finished member of a run (checkpoints a takeover resumes from).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "run_members",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("member", sa.String(200), primary_key=True),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("result", _JSON, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_run_members_session", "run_members", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_run_members_session", table_name="run_members")
    op.drop_table("run_members")
