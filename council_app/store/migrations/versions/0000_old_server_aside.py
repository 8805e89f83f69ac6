"""Move the old server's tables aside so ours can be created (a no-op on other databases).

The server this one replaces used the same table names (``sessions``, ``session_state``)
with other columns, plus ``users``.  When they are found (``sessions.is_deleted``), they
are renamed to ``legacy_users`` / ``legacy_sessions`` / ``legacy_session_state`` with
their indexes (PostgreSQL and SQLite keep index names per schema, and ours would clash),
nothing is dropped; the migration runner then carries their content into our tables
(``council_app.migration``).  ``migrate_state.py --drop-legacy`` drops them later.

Revision ID: 0000
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision: str = "0000"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Old name -> new name, children first (their foreign keys follow the rename).
RENAMES = (
    ("session_state", "legacy_session_state"),
    ("sessions", "legacy_sessions"),
    ("users", "legacy_users"),
)
PREFIX = "legacy_"
# "CREATE [UNIQUE] INDEX [IF NOT EXISTS] name": group 1 is all but the name.
_INDEX_HEAD = re.compile(
    r'^(\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?)(?:"[^"]+"|\S+)', re.I
)


def _is_old_server(insp: sa.Inspector) -> bool:
    if not insp.has_table("sessions"):
        return False
    columns = {c["name"] for c in insp.get_columns("sessions")}
    return "is_deleted" in columns and "deleted_at" not in columns


def upgrade() -> None:
    bind = op.get_bind()
    insp = sa.inspect(bind)
    if not _is_old_server(insp):
        return
    for old, new in RENAMES:
        if insp.has_table(old):
            op.rename_table(old, new)
    news = [new for _, new in RENAMES]
    if bind.dialect.name == "postgresql":
        _rename_pg_indexes(bind, news)
    else:
        _rename_sqlite_indexes(bind, news)


def _rename_pg_indexes(bind: sa.Connection, tables: list[str]) -> None:
    """Every index (primary keys and unique constraints included: renaming the index
    renames its constraint) gets the prefix, so ``sessions_pkey`` and the GIN index
    ``ix_session_state_state_gin`` are free for ours."""
    rows = bind.execute(
        sa.text(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = ANY(:tables)"
        ),
        {"tables": tables},
    ).scalars()
    for name in list(rows):
        if not name.startswith(PREFIX):
            new = (PREFIX + name)[:63]
            op.execute(f'ALTER INDEX "{name}" RENAME TO "{new}"')


def _rename_sqlite_indexes(bind: sa.Connection, tables: list[str]) -> None:
    """SQLite renames its automatic indexes with the table; named ones are re-created
    under the prefixed name (SQLite has no ALTER INDEX)."""
    marks = ", ".join(f"'{t}'" for t in tables)
    rows = bind.exec_driver_sql(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        f"AND tbl_name IN ({marks})"
    ).all()
    for name, sql in rows:
        if name.startswith(PREFIX):
            continue
        head = _INDEX_HEAD.match(sql)
        if head is None:
            continue
        renamed = f'{head.group(1)}"{PREFIX}{name}"' + sql[head.end() :]
        op.execute(f'DROP INDEX "{name}"')
        op.execute(renamed)


def downgrade() -> None:
    insp = sa.inspect(op.get_bind())
    for old, new in reversed(RENAMES):
        if insp.has_table(new) and not insp.has_table(old):
            op.rename_table(new, old)
