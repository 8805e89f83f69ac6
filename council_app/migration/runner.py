"""The three runs: migrate (or its dry run), verify, export.

Batches are formed from the streamed source; each is one transaction holding one
statement, so an interrupted run leaves whole batches only and the next run, which
re-decides every session from what is stored, completes it.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson
from sqlalchemy import Connection, text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from council_app.migration import source, target
from council_app.migration.old_server import old_server_prefix
from council_app.migration.report import Progress, Summary, label_of
from council_app.migration.source import LegacySource
from council_app.revisions import RevisionClock
from council_app.settings import DEV_USER
from council_app.store.legacy_files import parse_timestamp, state_path, write_json_atomic
from council_app.store.postgres import PostgresStore

# A batch also closes once its documents reach this many bytes, so that a tree of large
# states keeps the same flat memory as one of small states.
MAX_BATCH_BYTES = 8 * 1024 * 1024


EXPORTED = "exported"


class MigrationAborted(Exception):
    """The database failed as a whole (not one session's data); whole batches stay done."""


@dataclass
class Options:
    sessions_dir: Path
    sqlite_url: str | None = None
    default_user: str = DEV_USER
    dry_run: bool = False
    force: bool = False
    batch_size: int = 500
    verbose: bool = False
    stop_after_batches: int | None = None  # test hook: SIGKILL after this many commits


@dataclass
class Batch:
    items: list[source.Item]
    failures: list[source.Failure]

    @property
    def size(self) -> int:
        return sum(i.size for i in self.items)


def batches(
    stream: Iterable[source.Item | source.Failure], size: int, max_bytes: int = MAX_BATCH_BYTES
) -> Iterator[Batch]:
    """Group items into batches of ``size`` sessions or ``max_bytes`` of documents; the
    failures met on the way travel with the batch."""
    batch = Batch([], [])
    nbytes = 0
    for entry in stream:
        if isinstance(entry, source.Failure):
            batch.failures.append(entry)
            continue
        batch.items.append(entry)
        nbytes += entry.size
        if len(batch.items) >= size or nbytes >= max_bytes:
            yield batch
            batch, nbytes = Batch([], []), 0
    if batch.items or batch.failures:
        yield batch


_END = object()


def read_ahead(gen: Iterator[Batch]) -> Iterator[Batch]:
    """Read and parse the next batch in a thread while the database works on this one.

    psycopg2 releases the GIL while it waits for PostgreSQL, so on two cores the file
    reading overlaps the database's work.  One batch is queued at most: memory stays flat.
    """
    slot: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(value: Any) -> bool:
        while not stop.is_set():
            try:
                slot.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in gen:
                if not put(batch):
                    return
            put(_END)
        except BaseException as e:  # handed to the consumer, which re-raises it
            put(e)

    worker = threading.Thread(target=produce, name="migration-reader", daemon=True)
    worker.start()
    try:
        while True:
            got = slot.get()
            if got is _END:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()
        worker.join()


def _sources(opts: Options, legacy: LegacySource | None) -> Iterator[source.Item | source.Failure]:
    yield from source.iter_tree(opts.sessions_dir, legacy, opts.default_user)
    if legacy is not None:
        yield from source.iter_legacy_only(opts.sessions_dir, legacy, opts.default_user)


def _is_row_error(e: DBAPIError) -> bool:
    """Errors one session's data can cause; anything else means the database is in trouble."""
    return isinstance(e, DataError | IntegrityError) and not e.connection_invalidated


def _reason(e: Exception) -> str:
    orig = getattr(e, "orig", None) or e
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


class _Batcher:
    """Runs batch statements on one connection, isolating a bad session when a batch fails."""

    def __init__(self, conn: Connection, sql: Any, force: bool, write: bool) -> None:
        self.conn = conn
        self.sql = sql
        self.force = force
        self.write = write
        self.clock = RevisionClock()

    def run(self, items: list[source.Item]) -> dict[str, str | tuple[str, str]]:
        try:
            return dict(self._once(items))
        except DBAPIError as e:
            if not _is_row_error(e):
                raise MigrationAborted(_reason(e)) from e
        # Some session's data was refused: find which, one session per transaction.
        outcomes: dict[str, str | tuple[str, str]] = {}
        for item in items:
            try:
                outcomes.update(self._once([item]))
            except DBAPIError as e:
                if not _is_row_error(e):
                    raise MigrationAborted(_reason(e)) from e
                outcomes[item.session_id] = (target.FAILED, f"refused by PostgreSQL: {_reason(e)}")
        return outcomes

    def _once(self, items: list[source.Item]) -> dict[str, str]:
        revisions = [self.clock.next() for _ in items]
        tx = self.conn.begin()
        try:
            result = target.run_batch(self.conn, self.sql, items, revisions, self.force)
        except BaseException:
            tx.rollback()
            raise
        if self.write:
            tx.commit()
        else:
            tx.rollback()
        return result


def _open_connection(store: PostgresStore) -> Connection:
    try:
        conn = store.engine.connect()
        store.lift_deadline(conn)  # batches may take longer than an app query's bound
        target.prepare_connection(conn)
    except DBAPIError as e:
        raise MigrationAborted(f"cannot connect: {_reason(e)}") from e
    return conn


def _drive(
    batcher: _Batcher,
    exists: bool,
    absent: str,
    opts: Options,
    legacy: LegacySource | None,
    summary: Summary,
    progress: Progress,
    out: TextIO | None,
) -> Iterator[int]:
    """Send every batch of the sources through ``batcher`` and record the outcomes; yields
    the number of batches done.  Without the tables every session is ``absent``."""
    stream = read_ahead(batches(_sources(opts, legacy), opts.batch_size))
    for done, batch in enumerate(stream, start=1):
        if not batch.items:
            outcomes = {}
        elif exists:
            outcomes = batcher.run(batch.items)
        else:
            outcomes = dict.fromkeys((i.session_id for i in batch.items), absent)
        _record(batch, outcomes, summary, out, opts.verbose)
        progress.advance(len(batch.items) + len(batch.failures), batch.size)
        yield done


def run_migrate(
    store: PostgresStore,
    opts: Options,
    legacy: LegacySource | None,
    summary: Summary,
    progress: Progress,
    out: TextIO | None,
) -> None:
    """Migrate (or, with dry_run, classify) every session of the tree and the legacy db."""
    if not opts.dry_run:
        try:
            store.create_schema()
        except Exception as e:
            raise MigrationAborted(f"cannot create the schema: {_reason(e)}") from e
    conn = _open_connection(store)
    try:
        exists = True
        if opts.dry_run:
            # The old server's tables still in place are not ours: everything is new.
            exists = target.tables_exist(conn) and old_server_prefix(conn) != ""
            conn.rollback()
        sql = target.MIGRATE_SQL if not opts.dry_run else target.CLASSIFY_SQL
        batcher = _Batcher(conn, sql, opts.force, write=not opts.dry_run)

        for done in _drive(batcher, exists, target.MIGRATED, opts, legacy, summary, progress, out):
            if opts.stop_after_batches is not None and done >= opts.stop_after_batches:
                os.kill(os.getpid(), signal.SIGKILL)  # an abrupt stop, for the rerun test
    except DBAPIError as e:
        raise MigrationAborted(_reason(e)) from e
    finally:
        conn.close()


def run_verify(
    store: PostgresStore,
    opts: Options,
    legacy: LegacySource | None,
    summary: Summary,
    progress: Progress,
    out: TextIO | None,
) -> None:
    """Compare every file (and legacy-only state) with its row; nothing is written."""
    conn = _open_connection(store)
    try:
        exists = target.tables_exist(conn)
        conn.rollback()
        batcher = _Batcher(conn, target.VERIFY_SQL, False, write=False)

        for _ in _drive(batcher, exists, target.MISSING, opts, legacy, summary, progress, out):
            pass
    except DBAPIError as e:
        raise MigrationAborted(_reason(e)) from e
    finally:
        conn.close()


def _record(
    batch: Batch,
    outcomes: dict[str, str | tuple[str, str]],
    summary: Summary,
    out: TextIO | None,
    verbose: bool,
) -> None:
    for failure in batch.failures:
        summary.fail(failure.session_id, failure.origin, failure.reason)
        _say(out, verbose, target.FAILED, failure.origin)
    for item in batch.items:
        outcome = outcomes.get(item.session_id, (target.FAILED, "no outcome from the database"))
        if isinstance(outcome, tuple):
            summary.fail(item.session_id, item.origin, outcome[1])
            _say(out, verbose, target.FAILED, item.origin)
            continue
        if outcome.startswith(target.MISMATCH + ":"):
            fields = outcome.split(":", 1)[1].replace(",", ", ")
            summary.record(item.session_id, target.MISMATCH, f"{item.origin} ({fields})")
            _say(out, verbose, target.MISMATCH, f"{item.session_id} ({fields})", summary.mode)
            continue
        summary.record(item.session_id, outcome, item.origin, item.source)
        summary.bytes += item.size
        _say(out, verbose, outcome, f"{item.session_id}  (from {item.source})", summary.mode)


def _say(out: TextIO | None, verbose: bool, outcome: str, what: str, mode: str = "migrate") -> None:
    if verbose and out is not None:
        out.write(f"{label_of(mode, outcome):<26}{what}\n")


def run_export(
    store: PostgresStore, opts: Options, summary: Summary, progress: Progress, out: TextIO | None
) -> None:
    """Write every stored state back to its state.json (newer file wins unless --force)."""
    conn = _open_connection(store)
    try:
        if not target.tables_exist(conn):
            summary.notes.append("the database has no session_state table: nothing to export")
            return
        progress.total = int(conn.execute(text("SELECT count(*) FROM session_state")).scalar() or 0)
        for row in target.iter_db_states(conn):
            progress.advance(1)
            try:
                path = state_path(opts.sessions_dir, row.session_id)
            except ValueError:
                summary.fail(row.session_id, f"session_state {row.session_id!r}", "invalid id")
                continue
            try:
                outcome = _export_one(path, row, opts)
            except OSError as e:
                summary.fail(row.session_id, str(path), f"cannot write: {e.strerror or e}")
                _say(out, opts.verbose, target.FAILED, str(path), "export")
                continue
            summary.record(row.session_id, outcome, str(path))
            if outcome in (EXPORTED, target.UPDATED) and not opts.dry_run:
                summary.bytes += path.stat().st_size  # what was written
            _say(out, opts.verbose, outcome, row.session_id, "export")
        for sid, deleted_at in target.iter_tombstones(conn):
            _export_tombstone(sid, deleted_at, opts, summary, out)
        conn.rollback()
    except DBAPIError as e:
        raise MigrationAborted(_reason(e)) from e
    finally:
        conn.close()


def _export_tombstone(
    sid: str, deleted_at: datetime, opts: Options, summary: Summary, out: TextIO | None
) -> None:
    """A session hard-deleted on PostgreSQL must not come back from its old file: the file
    backend reads ``"deleted": true`` as a tombstone.  Sessions without a file are left alone."""
    try:
        path = state_path(opts.sessions_dir, sid)
        raw = path.read_bytes()
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except (ValueError, OSError):
        return
    try:
        current = orjson.loads(raw)
    except orjson.JSONDecodeError:
        current = None
    if not isinstance(current, dict) or current.get("deleted") is True:
        return  # nothing the file backend would show
    file_time = parse_timestamp(current.get("updated_at")) or mtime
    if file_time > deleted_at and not opts.force:
        outcome = target.SKIPPED
    else:
        outcome = target.UPDATED
        if not opts.dry_run:
            try:
                write_json_atomic(path, {**current, "deleted": True})
                summary.bytes += path.stat().st_size
            except OSError as e:
                summary.fail(sid, str(path), f"cannot write: {e.strerror or e}")
                return
    summary.record(sid, outcome, str(path))
    _say(out, opts.verbose, outcome, sid, "export")


def _export_one(path: Path, row: target.DbState, opts: Options) -> str:
    canonical = orjson.dumps(row.state, option=orjson.OPT_SORT_KEYS)
    outcome = EXPORTED
    try:
        raw = path.read_bytes()
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        raw = None
    if raw is not None:
        outcome = target.UPDATED
        try:
            current = orjson.loads(raw)
        except orjson.JSONDecodeError:
            current = None  # a broken file holds nothing to protect: the row replaces it
        if isinstance(current, dict):
            if orjson.dumps(current, option=orjson.OPT_SORT_KEYS) == canonical:
                return target.UNCHANGED
            file_time = parse_timestamp(current.get("updated_at")) or mtime
            if file_time > row.updated_at and not opts.force:
                return target.SKIPPED
    if not opts.dry_run:
        write_json_atomic(path, row.state)
    return outcome
