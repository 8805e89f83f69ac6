"""Adopting the old server's SQLite file in place, for the embedded default backend.

Our default database file has the old server's name (``agent_council.db``), so starting
with DATABASE_URL unset in its working directory (the runbook's rollback step) finds its
tables.  ``SqliteFileStore.create_schema`` calls :func:`adopt` under SQLite's write lock:

1. a backup copy beside the file, made with SQLite's backup API (WAL commits included)
   just before the write lock is taken (``make_backup``);
2. revision 0000 moves the old tables aside (``legacy_*``), the others create ours;
3. every session is carried by the migration's own sources (``source``: newer of
   state.json and the database wins, owner from ``users.external_id``, deletion and cost
   kept): its state goes where this backend keeps it (``sessions/<id>/state.json``; an
   older file is kept as ``state.json.pre-adoption``), metadata and hot keys into SQLite;
4. a report ``agent_council.db.adoption.json`` says what came from where and what failed.

All of it is one transaction: another worker waits on the lock and then finds our schema.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, insert

from council_app.migration import source
from council_app.migration.old_server import LEGACY_PREFIX, OldServerDb, backup_sqlite
from council_app.revisions import RevisionClock
from council_app.settings import Settings
from council_app.store import schema_versions
from council_app.store.legacy_files import state_path, write_json_atomic
from council_app.store.schema import session_state, sessions

log = logging.getLogger(__name__)

KEPT_SUFFIX = ".pre-adoption"


@dataclass
class Adoption:
    backup: str
    carried: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    deleted: int = 0
    failures: list[dict[str, str | None]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "backup": self.backup,
            "carried": self.carried,
            "deleted": self.deleted,
            "sources": self.sources,
            "failed": len(self.failures),
            "failures": self.failures,
        }


def make_backup(database: str) -> Path:
    """``agent_council.db.pre-adoption-<UTC time>.bak`` beside the file, by SQLite's backup API."""
    db_path = Path(database).resolve()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    backup = db_path.with_name(f"{db_path.name}.pre-adoption-{stamp}.bak")
    backup_sqlite(db_path, backup)
    return backup


def adopt(conn: Connection, settings: Settings, backup: Path) -> Adoption:
    """Schema to head (old tables aside), sessions carried; in the caller's transaction,
    after ``make_backup``."""
    db_path = Path(conn.engine.url.database or "agent_council.db").resolve()
    log.warning("adopting the old server's database %s (backup copy: %s)", db_path, backup)
    schema_versions.upgrade_to_head(conn, adopt_legacy=True)
    legacy = OldServerDb(conn, LEGACY_PREFIX, f"{db_path.name} (old server)")
    result = carry(conn, legacy, Path(settings.sessions_dir), settings.legacy_owner)
    result.backup = str(backup)
    report = db_path.with_name(db_path.name + ".adoption.json")
    report.write_bytes(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2))
    log.warning(
        "adopted %d sessions (%s), %d failed; report: %s",
        result.carried,
        ", ".join(f"{n} from {k}" for k, n in sorted(result.sources.items())),
        len(result.failures),
        report,
    )
    for f in result.failures:
        log.error("not adopted: %s: %s", f["file"], f["reason"])
    return result


def carry(conn: Connection, legacy: OldServerDb, sessions_dir: Path, owner: str) -> Adoption:
    """Every session of the tree and the old tables into ours (state.json + SQLite rows)."""
    result = Adoption(backup="")
    clock = RevisionClock()
    stream = [
        *source.iter_tree(sessions_dir, legacy, owner),
        *source.iter_legacy_only(sessions_dir, legacy, owner),
    ]
    for entry in stream:
        if isinstance(entry, source.Failure):
            result.failures.append(
                {"session_id": entry.session_id, "file": entry.origin, "reason": entry.reason}
            )
            continue
        _write(conn, entry, sessions_dir, clock.next())
        result.carried += 1
        result.sources[entry.source] = result.sources.get(entry.source, 0) + 1
        result.deleted += entry.meta.deleted_at is not None
    return result


def _write(conn: Connection, item: source.Item, sessions_dir: Path, revision: int) -> None:
    meta = item.meta
    if item.state_json is not None and item.source in (source.FROM_DB, source.FROM_DB_NEWER):
        path = state_path(sessions_dir, item.session_id)
        if path.exists():
            path.replace(path.with_name(path.name + KEPT_SUFFIX))  # the older copy, kept
        write_json_atomic(path, orjson.loads(item.state_json))
    conn.execute(
        insert(sessions)
        .prefix_with("OR IGNORE")
        .values(
            id=meta.session_id,
            user_id=meta.user_id,
            question=meta.question,
            status=meta.status,
            current_step=meta.current_step,
            cost=meta.cost_usd,
            total_tokens=meta.total_tokens,
            created_at=meta.created_at,
            updated_at=meta.updated_at,
            deleted_at=meta.deleted_at,
        )
    )
    if item.state_json is None:
        return  # a deleted session whose state was gone already: its row is the tombstone
    conn.execute(
        insert(session_state)
        .prefix_with("OR IGNORE")
        .values(
            session_id=meta.session_id,
            state=None,
            progress=orjson.loads(item.hot_json),
            revision=revision,
            updated_at=meta.updated_at,
        )
    )
