"""Command line of ``migrate_state.py``: parse, refuse early with one line, run, summarise."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from council_app.migration import runner, source
from council_app.migration.legacy_db import LegacyDb, LegacyDbError
from council_app.migration.report import Progress, Summary
from council_app.settings import DEV_USER, ConfigError, Settings, mask_url, normalize_database_url
from council_app.store.postgres import PostgresStore

PROG = "migrate_state.py"

DESCRIPTION = """\
Move legacy session state into PostgreSQL (the database in DATABASE_URL; any accepted
form, postgresql+asyncpg:// included), or back out of it with --export.

Every sessions/<id>/state.json becomes a session_state row (the document exactly as
stored, its hot keys copied to the progress column) plus a sessions metadata row when
there is none: question, status, current_step, cost, tokens, owner and timestamps are
derived from the state, the legacy SQLite row filling what the state lacks.  Sessions
found only in the legacy SQLite database (its metadata and its sessions.state column)
are migrated too.  A session without an owner goes to --default-user.  Timestamps
without a zone are UTC.  Files and the SQLite database are only ever read."""

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

exit status: 0 all done, 1 some session failed (or --verify found differences),
2 refused or aborted (DATABASE_URL unset or not PostgreSQL, database unreachable),
130 interrupted (Ctrl-C)."""


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
        "--default-user",
        metavar="USER",
        default=DEV_USER,
        help=f"owner of sessions that name none (default: {DEV_USER})",
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


def main(
    argv: Sequence[str] | None,
    env: Mapping[str, str],
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the tool; returns the exit status (0 done, 1 sessions failed, 2 refused/aborted)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = build_parser(env).parse_args(argv)
    try:
        url, note = target_url(env)
    except ConfigError as e:
        err.write(f"{PROG}: refusing to run: {e}\n")
        return 2
    mode = "verify" if args.verify else "export" if args.export else "migrate"
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
    legacy = None
    if mode != "export":
        try:
            legacy = LegacyDb.open(args.sqlite_url)
        except LegacyDbError as e:
            err.write(f"{PROG}: refusing to run: {e}\n")
            return 2
        if legacy is None and not opts.sessions_dir.is_dir():
            err.write(f"{PROG}: refusing to run: no sessions directory at {opts.sessions_dir}\n")
            return 2
    summary = Summary(mode, mask_url(url) or "", str(opts.sessions_dir), dry_run=opts.dry_run)
    if note:
        summary.notes.append(note)
    if legacy is not None:
        summary.notes.append(f"legacy SQLite database: {legacy.label}")
    elif mode != "export":
        summary.notes.append("no legacy SQLite database")
    total = source.count_candidates(opts.sessions_dir) if mode != "export" else 0
    progress = Progress(None if args.quiet else err, total, mode)
    store = PostgresStore(Settings(database_url=url, sessions_dir=opts.sessions_dir))
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
        summary.finish()
        store.close()
        if legacy is not None:
            legacy.close()
    if args.json:
        summary.write_json(out)
    else:
        summary.write_table(out)
    out.flush()
    if aborted:
        err.write(f"{PROG}: aborted: {aborted}\n")
        return status_if_aborted
    return 0 if summary.ok else 1
