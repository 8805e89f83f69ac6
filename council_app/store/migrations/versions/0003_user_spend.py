"""user_spend: what each user spent on LLM calls per UTC day (USER_DAILY_BUDGET_USD).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "user_spend",
        sa.Column("user_id", sa.String(320), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("calls", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_spend")
