"""Schema versions: our tables are Alembic revisions in ``store/migrations/versions``.

Both backends' ``create_schema()`` call :func:`upgrade_to_head` on a connection inside their
own transaction (PostgreSQL: under the schema advisory lock), so workers racing at start-up
apply each revision once.  :func:`check` tells start-up whether the code can use a database
without changing it.

Add a revision: ``python -m council_app.store.schema_versions new "what it adds"`` writes
``versions/NNNN_what_it_adds.py`` on top of the current head; fill in upgrade()/downgrade()
(use ``op.batch_alter_table`` for ALTERs so SQLite works too).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BASELINE = "0001"
# The command an operator runs when start-up refuses a database.
MIGRATE_COMMAND = "python migrate_state.py"


class SchemaState(StrEnum):
    EMPTY = "empty"  # nothing of ours: upgrade creates everything
    UNVERSIONED = "unversioned"  # made by our code before Alembic: stamped, then upgraded
    LEGACY = "legacy"  # the old server's tables: adopted by the migration tool
    BEHIND = "behind"  # ours, older revision: upgrade
    CURRENT = "current"
    UNKNOWN = "unknown"  # a revision this code does not know (newer code ran here)


@dataclass(frozen=True)
class SchemaStatus:
    state: SchemaState
    current: str | None
    head: str

    @property
    def upgradable_at_start(self) -> bool:
        """Start-up may bring these to head itself; the others need an operator."""
        return self.state in (
            SchemaState.EMPTY,
            SchemaState.UNVERSIONED,
            SchemaState.BEHIND,
            SchemaState.CURRENT,
        )


def alembic_config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    if head is None:  # pragma: no cover - the baseline always exists
        raise RuntimeError("no Alembic revisions found")
    return head


def _columns(conn: Connection, table: str) -> set[str] | None:
    insp = inspect(conn)
    if not insp.has_table(table):
        return None
    return {c["name"] for c in insp.get_columns(table)}


def is_legacy_schema(conn: Connection) -> bool:
    """The old server's tables sit where ours belong (``sessions.is_deleted``)."""
    cols = _columns(conn, "sessions")
    return cols is not None and "is_deleted" in cols and "deleted_at" not in cols


def current_vs_head(conn: Connection) -> tuple[str | None, str]:
    """(revision the database is at, or None; the newest revision this code knows)."""
    current = MigrationContext.configure(conn).get_current_revision()
    return current, head_revision()


def check(conn: Connection) -> SchemaStatus:
    """Where this database stands, without changing it."""
    current, head = current_vs_head(conn)
    if current is None:
        if is_legacy_schema(conn):
            state = SchemaState.LEGACY
        elif _columns(conn, "sessions") is not None or _columns(conn, "session_state") is not None:
            state = SchemaState.UNVERSIONED
        else:
            state = SchemaState.EMPTY
    elif current == head:
        state = SchemaState.CURRENT
    else:
        known = {rev.revision for rev in script_directory().walk_revisions()}
        state = SchemaState.BEHIND if current in known else SchemaState.UNKNOWN
    return SchemaStatus(state, current, head)


def _stamp_pre_alembic(conn: Connection, cfg: Config) -> None:
    """Tables made before Alembic equal the baseline; bring the PG extras up to it too."""
    if conn.dialect.name == "postgresql":
        from council_app.store.schema import PG_MERGE_FUNCTION, SESSION_STATE_FILLFACTOR

        conn.execute(
            text(f"ALTER TABLE session_state SET (fillfactor = {SESSION_STATE_FILLFACTOR})")
        )
        conn.execute(text(PG_MERGE_FUNCTION))
    command.stamp(cfg, BASELINE)


def upgrade_to_head(conn: Connection, *, adopt_legacy: bool = False) -> SchemaStatus:
    """Bring the database to head in the caller's transaction; returns where it was.

    Raises SchemaNotUsable for a revision this code does not know, and for the old
    server's schema unless ``adopt_legacy`` (the migration tool, or the embedded backend
    after its backup copy) says to move it aside.
    """
    status = check(conn)
    if status.state is SchemaState.UNKNOWN or (
        status.state is SchemaState.LEGACY and not adopt_legacy
    ):
        raise SchemaNotUsable(status)
    if status.state is SchemaState.CURRENT:
        return status
    cfg = alembic_config(conn)
    if status.state is SchemaState.UNVERSIONED:
        _stamp_pre_alembic(conn, cfg)
    command.upgrade(cfg, "head")
    return status


class SchemaNotUsable(RuntimeError):
    """The database's schema is not one this code can use or upgrade at start."""

    def __init__(self, status: SchemaStatus) -> None:
        self.status = status
        super().__init__(describe_refusal(status))


def describe_refusal(status: SchemaStatus) -> str:
    """The one line start-up prints before it exits."""
    if status.state is SchemaState.LEGACY:
        return (
            "database holds the old server's schema (not yet adopted): "
            f"run `{MIGRATE_COMMAND}` with the same DATABASE_URL, then start again"
        )
    if status.state is SchemaState.UNKNOWN:
        return (
            f"database schema is at revision {status.current}, newer than this code knows "
            f"(head {status.head}): deploy the newer code, or run `{MIGRATE_COMMAND} --check`"
        )
    return f"database schema {status.state} (revision {status.current}, head {status.head})"


def _new_revision(message: str) -> str:
    """Write the next numbered revision file on top of head (for developers)."""
    head = head_revision()
    rev_id = f"{int(head) + 1:04d}" if head.isdigit() else None
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40]
    cfg = alembic_config()
    cfg.set_main_option("file_template", "%%(rev)s_" + slug)
    script = command.revision(cfg, message=message, rev_id=rev_id, head="head")
    path = getattr(script, "path", "")
    return str(path)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "new":
        print(_new_revision(sys.argv[2]))
    else:
        print('usage: python -m council_app.store.schema_versions new "what it adds"')
        sys.exit(2)
