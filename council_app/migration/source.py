"""What the migration reads: the ``sessions/`` tree, streamed, and the legacy SQLite database.

Each session becomes an ``Item`` (the document's exact text plus the metadata row derived
from it) or a ``Failure`` (file and reason).  Only one file is parsed at a time and the
parsed document is dropped as soon as its metadata is derived, so memory does not grow
with the tree.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from council_app.migration.legacy_db import LegacyDb, LegacyRow
from council_app.migration.old_server import OldServerDb
from council_app.session_ids import is_valid_session_id
from council_app.store.base import SessionRow, hot_part, overlay_hot
from council_app.store.legacy_files import STATE_FILE, parse_timestamp, session_row

# Either kind of legacy database: our own embedded SQLite, or the old server's tables.
LegacySource = LegacyDb | OldServerDb

# Where a session's content came from (the summary counts and lists these).
FROM_FILE = "state.json"
FROM_DB = "database"
FROM_DB_NEWER = "database (newer than its state.json)"
FROM_FILE_NEWER = "state.json (newer than the database)"
FROM_METADATA = "metadata only (deleted, no state)"

# Lookups in the legacy database go by this many ids at a time.
LEGACY_LOOKUP_CHUNK = 500
# Column widths of the ``sessions`` table (schema.py): longer values cannot be stored.
_MAX_STATUS_LEN = 32
_MAX_USER_LEN = 320


@dataclass(slots=True)
class Item:
    """One session ready to write: ``state_json`` is the document exactly as found."""

    session_id: str
    origin: str  # where it came from, for reports
    state_json: bytes | None  # None: metadata only (a legacy row without any state)
    hot_json: bytes
    compare_at: datetime  # the document's age for "database newer": updated_at or mtime
    meta: SessionRow
    source: str = FROM_FILE  # FROM_* above

    @property
    def size(self) -> int:
        return len(self.state_json or "")


@dataclass(slots=True)
class Failure:
    session_id: str | None
    origin: str
    reason: str


class InvalidState(ValueError):
    """The document cannot be migrated; the message is the reason shown to the operator."""


def count_candidates(sessions_dir: Path) -> int:
    """Session folders in the tree (names only, no file reads): the progress bar's total."""
    try:
        with os.scandir(sessions_dir) as it:
            return sum(1 for e in it if is_valid_session_id(e.name) and e.is_dir())
    except FileNotFoundError:
        return 0


def iter_tree(
    sessions_dir: Path, legacy: LegacySource | None, default_user: str
) -> Iterator[Item | Failure]:
    """Every session folder of the tree, in directory order (os.scandir: no listing kept)."""
    chunk: list[tuple[str, Path, str]] = []
    try:
        it = os.scandir(sessions_dir)
    except FileNotFoundError:
        return
    with it:
        for entry in it:
            if not entry.is_dir():
                continue
            path = Path(entry.path) / STATE_FILE
            origin = _origin(sessions_dir, entry.name)
            if not is_valid_session_id(entry.name):
                if path.exists():
                    yield Failure(None, origin, "folder name is not a valid session id")
                continue
            chunk.append((entry.name, path, origin))
            if len(chunk) >= LEGACY_LOOKUP_CHUNK:
                yield from _read_chunk(chunk, legacy, default_user)
                chunk = []
    yield from _read_chunk(chunk, legacy, default_user)


def _origin(sessions_dir: Path, name: str) -> str:
    return str(Path(sessions_dir) / name / STATE_FILE)


def _read_chunk(
    chunk: list[tuple[str, Path, str]], legacy: LegacySource | None, default_user: str
) -> Iterator[Item | Failure]:
    rows = legacy.lookup([sid for sid, _, _ in chunk]) if legacy and chunk else {}
    for sid, path, origin in chunk:
        row = rows.get(sid)
        try:
            raw = path.read_bytes()
            mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except FileNotFoundError:
            continue  # a folder without state.json (uploads only): the legacy pass decides
        except OSError as e:
            if row is not None and row.has_state and legacy is not None:
                yield _from_db(sid, row, legacy, default_user, FROM_DB)
                continue
            yield Failure(sid, origin, f"unreadable: {e.strerror or e}")
            continue
        try:
            item: Item | Failure = build_item(sid, origin, raw, row, default_user, mtime)
        except InvalidState as e:
            item = Failure(sid, origin, str(e))
        if row is not None and row.has_state and legacy is not None:
            item = _newer(sid, item, row, legacy, default_user)
        yield item


def _newer(
    sid: str, file_item: Item | Failure, row: LegacyRow, legacy: LegacySource, default_user: str
) -> Item | Failure:
    """Both a state.json and a state in the database: the newer by updated_at wins (a tie
    goes to the database, which the old server's later versions wrote last)."""
    if isinstance(file_item, Failure):
        db_item = _from_db(sid, row, legacy, default_user, FROM_DB)
        return db_item if isinstance(db_item, Item) else file_item
    db_time = row.state_updated_at or row.updated_at
    if db_time is not None and db_time < file_item.compare_at:
        file_item.source = FROM_FILE_NEWER
        return file_item
    db_item = _from_db(sid, row, legacy, default_user, FROM_DB_NEWER)
    return db_item if isinstance(db_item, Item) else file_item


def _from_db(
    sid: str, row: LegacyRow, legacy: LegacySource, default_user: str, source: str
) -> Item | Failure:
    origin = f"{legacy.label}: session {sid}"
    raw = legacy.state_bytes(sid)
    if raw is None:
        return Failure(sid, origin, "its state row is empty")
    try:
        item = build_item(sid, origin, raw, row, default_user, None)
    except InvalidState as e:
        return Failure(sid, origin, f"state in the database: {e}")
    item.source = source
    return item


def iter_legacy_only(
    sessions_dir: Path, legacy: LegacySource, default_user: str
) -> Iterator[Item | Failure]:
    """Sessions the legacy database knows and the tree has no state.json for."""
    for row in legacy.iter_rows():
        origin = f"{legacy.label}: sessions.id={row.session_id!r}"
        if not is_valid_session_id(row.session_id):
            yield Failure(None, origin, "not a valid session id")
            continue
        if (Path(sessions_dir) / row.session_id / STATE_FILE).exists():
            continue  # the tree pass handled it (migrated or reported)
        if row.has_state and isinstance(legacy, OldServerDb):
            yield _from_db(row.session_id, row, legacy, default_user, FROM_DB)
            continue
        raw = legacy.state_bytes(row.session_id) if row.has_state else None
        try:
            if raw is None:
                if row.deleted_at is None:
                    yield Failure(
                        row.session_id,
                        origin,
                        "metadata without state: no state in the database and no state.json",
                    )
                    continue
                yield metadata_only_item(row, origin, default_user)
            else:
                item = build_item(row.session_id, origin, raw, row, default_user, None)
                item.source = FROM_DB
                yield item
        except InvalidState as e:
            yield Failure(row.session_id, origin, f"sessions.state: {e}")


def build_item(
    sid: str,
    origin: str,
    raw: bytes,
    legacy: LegacyRow | None,
    default_user: str,
    mtime: datetime | None,
) -> Item:
    """Validate one document and derive its metadata row; raises InvalidState with a reason.

    The bytes are kept as they are (orjson checks they are UTF-8 JSON), so what PostgreSQL
    parses is exactly the file, never a re-serialisation.
    """
    if not raw or raw.isspace():
        raise InvalidState("empty file")
    try:
        state = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        _check_utf8(raw)
        raise InvalidState(f"invalid JSON: {e}") from None
    if not isinstance(state, dict):
        raise InvalidState(f"not a JSON object (the document is a {_json_type(state)})")
    if legacy is not None and legacy.progress:
        raw = _with_progress(state, legacy.progress) or raw
    _check_fields(sid, state)
    if b"\\u0000" in raw and _has_nul(state):
        raise InvalidState("contains \\u0000, which PostgreSQL jsonb cannot store")
    meta = merge_metadata(sid, state, legacy, default_user)
    compare_at = parse_timestamp(state.get("updated_at"))
    if compare_at is None:
        compare_at = mtime or (legacy.updated_at if legacy else None) or meta.updated_at
    return Item(sid, origin, raw, orjson.dumps(hot_part(state)), compare_at, meta)


def _with_progress(state: dict[str, Any], progress: str) -> bytes | None:
    """Lay the embedded backend's last flushed hot keys over its state.json (in place);
    the new bytes, or None when there is nothing to add."""
    try:
        hot = orjson.loads(progress)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(hot, dict) or all(state.get(k) == v for k, v in hot.items()):
        return None
    overlay_hot(state, hot)
    return orjson.dumps(state)


def metadata_only_item(row: LegacyRow, origin: str, default_user: str) -> Item:
    meta = merge_metadata(row.session_id, {}, row, default_user)
    return Item(row.session_id, origin, None, b"{}", meta.updated_at, meta, FROM_METADATA)


def merge_metadata(
    sid: str, state: dict[str, Any], legacy: LegacyRow | None, default_user: str
) -> SessionRow:
    """The ``sessions`` row: the state's own values first, then the legacy row's, then
    what ``session_row`` derives (status from content, times from the id)."""
    legacy_user = legacy.user_id if legacy and legacy.user_id else None
    row = session_row(sid, state, default_user=legacy_user or default_user)
    if legacy is not None and legacy.old_server:
        # The old server's owner is users.external_id; a document's user_id there may be
        # its internal users.id, so the row decides, and no owner means the default user.
        row.user_id = legacy_user or default_user
    if row.total_tokens is not None and not -(2**63) <= row.total_tokens < 2**63:
        row.total_tokens = None  # the column is a bigint; the document keeps the value
    if legacy is None:
        return row
    if not isinstance(state.get("question"), str) and legacy.question:
        row.question = legacy.question
    if not _nonempty_str(state.get("status")) and legacy.status:
        row.status = legacy.status
    if not state.get("current_step") and legacy.current_step:
        row.current_step = legacy.current_step
    created = parse_timestamp(state.get("created_at"))
    if created is None and legacy.created_at:
        row.created_at = legacy.created_at
    if parse_timestamp(state.get("updated_at")) is None:
        row.updated_at = legacy.updated_at or row.created_at
    if row.deleted_at is None and legacy.deleted_at:
        row.deleted_at = legacy.deleted_at  # a deleted session must not come back
    if row.cost_usd is None and legacy.cost_usd is not None:
        row.cost_usd = legacy.cost_usd
    if row.total_tokens is None and legacy.total_tokens is not None:
        row.total_tokens = legacy.total_tokens
    return row


def _check_fields(sid: str, state: dict[str, Any]) -> None:
    """The "missing fields" rule: a usable state names its session or asks a question."""
    if "session_id" in state:
        found = state["session_id"]
        if not isinstance(found, str):
            raise InvalidState("session_id is not a string")
        if found != sid:
            raise InvalidState(f"session_id {found!r} differs from the folder name")
    question = state.get("question")
    if "session_id" not in state and not isinstance(question, str):
        raise InvalidState("missing fields: neither session_id nor question")
    if question is not None and not isinstance(question, str):
        raise InvalidState("question is not a string")
    for key in ("status", "current_step"):
        value = state.get(key)
        if value is not None and not (isinstance(value, str) and len(value) <= _MAX_STATUS_LEN):
            raise InvalidState(f"{key} is not a string of at most {_MAX_STATUS_LEN} characters")
    user = state.get("user_id")
    if user is not None and not (isinstance(user, str) and len(user) <= _MAX_USER_LEN):
        raise InvalidState(f"user_id is not a string of at most {_MAX_USER_LEN} characters")


def _check_utf8(raw: bytes) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidState(f"not UTF-8: byte 0x{raw[e.start]:02x} at offset {e.start}") from None


def _json_type(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False
