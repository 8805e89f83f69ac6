"""Command line of ``migrate_state.py``: parse, refuse early with one line, run, summarise."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from sqlalchemy import inspect, text
from sqlalchemy.exc import SQLAlchemyError

from council_app.migration import runner, source
from council_app.migration.legacy_db import LegacyDb, LegacyDbError, sqlite_file
from council_app.migration.old_server import LEGACY_TABLES, OldServerDb, old_server_prefix
from council_app.migration.report import Progress, Summary
from council_app.migration.source import LegacySource
from council_app.settings import (
    DEV_USER,
    ConfigError,
    Settings,
    mask_url,
    normalize_database_url,
)
from council_app.store import schema_versions
from council_app.store.base import StoreError
from council_app.store.postgres import PostgresStore
from council_app.store.schema_versions import SchemaNotUsable, SchemaState

PROG = "migrate_state.py"

DESCRIPTION = """\
Move legacy session state into PostgreSQL (the database in DATABASE_URL; any accepted
form, postgresql+asyncpg:// included), or back out of it with --export.

The old server's database is adopted whichever way it arrives: its SQLite file
(--legacy-db, default ./agent_council.db; read through SQLite's backup API, WAL included,
never written), or its tables already in the DATABASE_URL database (moved aside to
legacy_users / legacy_sessions / legacy_session_state by schema revision 0000, kept until
--drop-legacy).  Its content comes from session_state.state; where a state.json exists too,
the newer by updated_at wins and the summary says which source each session came from.
The owner is users.external_id; is_deleted sessions stay deleted, cost and tokens kept.

Every sessions/<id>/state.json becomes a session_state row (the document exactly as
stored, its hot keys copied to the progress column) plus a sessions metadata row when
there is none: question, status, current_step, cost, tokens, owner and timestamps are
derived from the state, the legacy SQLite row filling what the state lacks.  Sessions
found only in the legacy SQLite database (its metadata and its sessions.state column)
are migrated too.  A session without an owner goes to --default-user.  Timestamps
without a zone are UTC.  Files and the SQLite database are only ever read.  A session
whose metadata exists but whose state is found nowhere is reported failed."""

EPILOG = """\
outcomes:
  migrated     new row written          updated    row replaced by a newer file
  unchanged    row equals the file (canonical JSON: key order, whitespace ignored)
  skipped      the row is newer than the file (session_state.updated_at against the
               state's updated_at, else the file's mtime); the row is kept; --force
               overrides
  failed       the file and the reason are listed; the run goes on

a state fails when it is unreadable, empty, not UTF-8, not valid JSON, not a JSON
object, names another session (its session_id differs from the folder name), has
neither a session_id nor a question, has a non-string question, a status or
current_step that is not a string of at most 32 characters, a user_id that is not a
string of at most 320, or a \\u0000 (PostgreSQL jsonb cannot store it).  Folders whose
name is not a session id are ignored unless they hold a state.json (then: failed).

batches: --batch-size sessions (or 8 MB of documents, whichever comes first) per
transaction, one statement each; an interrupted run leaves whole batches, and running
again completes it.

--verify compares content, owner, deletion and cost of every session with its source
(state.json or the old database) and lists each difference by field.

exit status: 0 all done, 1 some session failed (or --verify found differences),
2 refused or aborted (DATABASE_URL unset or not PostgreSQL, database unreachable, a
schema revision newer than this code), 130 interrupted (Ctrl-C).  A refusal prints one
line and no summary."""


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default_dir = env.get("SESSIONS_DIR", "").strip() or "sessions"
    parser.add_argument(
        "--sessions-dir",
        metavar="DIR",
        type=Path,
        default=Path(default_dir),
        help=f"the legacy sessions/ tree (default: $SESSIONS_DIR or ./sessions; now {default_dir})",
    )
    parser.add_argument(
        "--sqlite-url",
        metavar="URL",
        help="legacy SQLite database to read sessions from (default: sqlite:///agent_council.db "
        "in the current directory, used only if that file exists)",
    )
    parser.add_argument(
        "--legacy-db",
        metavar="PATH",
        type=Path,
        help="the old server's SQLite file (default: ./agent_council.db when it exists and the "
        "DATABASE_URL database holds no old tables of its own)",
    )
    admin = env.get("MIGRATION_ADMIN_EXTERNAL_ID", "").strip()
    parser.add_argument(
        "--default-user",
        metavar="USER",
        default=admin or DEV_USER,
        help="owner of sessions that name none (default: $MIGRATION_ADMIN_EXTERNAL_ID, else "
        f"{DEV_USER}; now {admin or DEV_USER})",
    )
    parser.add_argument(
        "--drop-legacy",
        action="store_true",
        help="after a run with no failure, drop the old server's tables that were moved aside "
        "in the DATABASE_URL database (legacy_*); nothing is dropped otherwise",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="report what would happen (same decisions, same summary) and write nothing",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--verify",
        action="store_true",
        help="write nothing; compare every file with its row (canonical JSON) and list "
        "mismatches and missing rows",
    )
    mode.add_argument(
        "--export",
        action="store_true",
        help="the rollback path: write every database state (hot keys overlaid) back to "
        "sessions/<id>/state.json with atomic writes; a file newer than its row is kept; the "
        'file of a session hard-deleted on PostgreSQL gets "deleted": true',
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write even when the destination is newer (the row when migrating, the file "
        "with --export)",
    )
    parser.add_argument(
        "--batch-size",
        metavar="N",
        type=_positive_int,
        default=500,
        help="sessions per transaction (default: 500)",
    )
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="print only the summary (no progress)"
    )
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="also print one line per session with its outcome",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as JSON (for automation)"
    )
    parser.add_argument(
        "--_stop-after-batches", dest="stop_after_batches", type=int, help=argparse.SUPPRESS
    )
    return parser


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {raw!r}")
    return value


def target_url(env: Mapping[str, str]) -> tuple[str, str | None]:
    """The PostgreSQL URL from DATABASE_URL, or ConfigError with the one-line reason."""
    raw = env.get("DATABASE_URL", "").strip()
    if not raw:
        raise ConfigError(
            "DATABASE_URL is not set; set it to the PostgreSQL database to migrate into "
            "(postgresql://user:password@host:port/dbname)"
        )
    url, note = normalize_database_url(raw)
    if not url.startswith("postgresql"):
        raise ConfigError(
            f"DATABASE_URL is {mask_url(raw)}, not PostgreSQL; the migration only moves state "
            "into (or, with --export, out of) PostgreSQL"
        )
    return url, note


IN_PLACE_LABEL = "the old server's tables in this database"


class Refused(Exception):
    """The run cannot start; the message is the one line the operator sees."""


def prepare_target(store: PostgresStore, mode: str, dry_run: bool) -> str | None:
    """Reach the database and bring its schema to head (migrate) before anything is
    counted, so that a refusal prints one line and no summary; returns a note."""
    try:
        with store.engine.connect() as conn:
            status = schema_versions.check(conn)
    except SQLAlchemyError as e:
        raise Refused(f"cannot reach the database: {_first_line(e)}") from e
    if status.state is SchemaState.UNKNOWN:
        raise Refused(schema_versions.describe_refusal(status))
    if status.state is SchemaState.LEGACY and mode != "migrate":
        raise Refused(
            "the database holds the old server's tables, not adopted yet: run the migration "
            "(without --verify/--export) first"
        )
    if mode != "migrate" or dry_run:
        return None
    try:
        store.create_schema(adopt_legacy=True)
    except (StoreError, SchemaNotUsable) as e:
        raise Refused(f"cannot bring the schema to {status.head}: {e}") from e
    if status.state is SchemaState.LEGACY:
        return (
            "the old server's tables were moved aside to "
            + ", ".join(new for _, new in LEGACY_TABLES)
            + " (kept until --drop-legacy) and their sessions carried"
        )
    return None


def open_legacy(sqlite_url: str | None, store: PostgresStore) -> LegacySource | None:
    """The legacy database to read: the file named, else the old server's tables in the
    target database, else ./agent_council.db when it exists."""
    if sqlite_url is not None:
        return _open_file(sqlite_url, explicit=True)
    conn = store.engine.connect()
    try:
        prefix = old_server_prefix(conn)
    except SQLAlchemyError:
        prefix = None
    if prefix is not None:
        return OldServerDb(conn, prefix, IN_PLACE_LABEL, on_close=conn.close)
    conn.close()
    return _open_file(None, explicit=False)


def _open_file(sqlite_url: str | None, explicit: bool) -> LegacySource | None:
    path = sqlite_file(sqlite_url, explicit)
    if path is None:
        return None
    old = OldServerDb.from_sqlite_file(path)
    return old if old is not None else LegacyDb.open(sqlite_url)


def drop_legacy(store: PostgresStore, summary: Summary) -> str:
    """--drop-legacy: only after a run that carried everything."""
    if not summary.ok:
        return "--drop-legacy: the old server's tables are kept (this run had failures)"
    names = [new for _, new in LEGACY_TABLES]
    with store.engine.begin() as conn:
        found = [n for n in names if inspect(conn).has_table(n)]
        for name in found:  # children first
            conn.execute(text(f'DROP TABLE "{name}"'))
    return f"--drop-legacy: dropped {', '.join(found)}" if found else "--drop-legacy: none left"


def _first_line(e: Exception) -> str:
    orig = getattr(e, "orig", None) or e
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the tool; returns the exit status (0 done, 1 sessions failed, 2 refused/aborted).

    Also the ``council-migrate`` console script, which calls it with no arguments: then
    the command line and the environment are the process's own."""
    if env is None:
        env = os.environ  # an entry point, like migrate_state.py: the one place it is read
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = build_parser(env).parse_args(argv)
    try:
        url, note = target_url(env)
    except ConfigError as e:
        err.write(f"{PROG}: refusing to run: {e}\n")
        return 2
    mode = "verify" if args.verify else "export" if args.export else "migrate"
    if args.legacy_db is not None:
        if args.sqlite_url is not None:
            err.write(f"{PROG}: refusing to run: give --legacy-db or --sqlite-url, not both\n")
            return 2
        args.sqlite_url = f"sqlite:///{args.legacy_db}"
    opts = runner.Options(
        sessions_dir=args.sessions_dir,
        sqlite_url=args.sqlite_url,
        default_user=args.default_user,
        dry_run=args.dry_run and not args.verify,
        force=args.force,
        batch_size=args.batch_size,
        verbose=args.verbose and not args.quiet,
        stop_after_batches=args.stop_after_batches,
    )
    store = PostgresStore(Settings(database_url=url, sessions_dir=opts.sessions_dir))
    try:
        schema_note = prepare_target(store, mode, opts.dry_run)
        legacy = None if mode == "export" else open_legacy(args.sqlite_url, store)
    except (Refused, LegacyDbError) as e:
        store.close()
        err.write(f"{PROG}: refusing to run: {e}\n")
        return 2
    if mode != "export" and legacy is None and not opts.sessions_dir.is_dir():
        store.close()
        err.write(f"{PROG}: refusing to run: no sessions directory at {opts.sessions_dir}\n")
        return 2
    summary = Summary(mode, mask_url(url) or "", str(opts.sessions_dir), dry_run=opts.dry_run)
    if note:
        summary.notes.append(note)
    if schema_note:
        summary.notes.append(schema_note)
    if legacy is not None:
        summary.notes.append(f"legacy database: {legacy.label}")
        default_file = sqlite_file(None, explicit=False)
        if legacy.label == IN_PLACE_LABEL and default_file is not None:
            summary.notes.append(
                f"{default_file} was not read (this database's old tables were): run again "
                f"with --legacy-db {default_file} to bring in its sessions too"
            )
    elif mode != "export":
        summary.notes.append("no legacy SQLite database")
    total = source.count_candidates(opts.sessions_dir) if mode != "export" else 0
    progress = Progress(None if args.quiet else err, total, mode)
    aborted = None
    status_if_aborted = 2
    try:
        if mode == "migrate":
            runner.run_migrate(store, opts, legacy, summary, progress, out)
        elif mode == "verify":
            runner.run_verify(store, opts, legacy, summary, progress, out)
        else:
            runner.run_export(store, opts, summary, progress, out)
    except runner.MigrationAborted as e:
        aborted = str(e)
        summary.notes.append(f"aborted: {aborted}")
        summary.aborted = aborted
    except KeyboardInterrupt:
        aborted = "interrupted; whole batches are kept, run again to complete"
        summary.notes.append(aborted)
        summary.aborted = aborted
        status_if_aborted = 130
    finally:
        progress.close()
        if legacy is not None:
            legacy.close()
        if args.drop_legacy and mode == "migrate" and not opts.dry_run:
            summary.notes.append(drop_legacy(store, summary))
        summary.finish()
        store.close()
    if args.json:
        summary.write_json(out)
    else:
        summary.write_table(out)
    out.flush()
    if aborted:
        err.write(f"{PROG}: aborted: {aborted}\n")
        return status_if_aborted
    return 0 if summary.ok else 1
