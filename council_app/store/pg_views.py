"""PostgreSQL reads that hand large JSON values out as text, for ``read_view``.

A completed session is hundreds of KB of JSON.  Measured here (docs/BENCHMARKS.md), the
costly part of serving it is not Python's parse and dump (orjson: ~0.2 ms for 327 KB) but
PostgreSQL's own output of JSONB as text (~2 ms for 327 KB) and moving it.  So:

* the statement returns each large value already serialised (``(doc -> key)::text``) and
  only the small keys as parsed JSON, the document detoasted once per row (the lateral
  subquery), never parsed or re-serialised in Python;
* ``ViewReader`` keeps those texts per process, keyed by the row version (``xmin``: any
  update of the row, a document write or a progress flush, makes a new one), within a
  byte budget; a read whose row version is cached costs one small query, the size of a
  ``/status`` read, whatever the size of the document.  The hot column is read fresh on
  every request and overlaid, so progress is never served from the cache.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Boolean, Connection, Text, text
from sqlalchemy.sql.selectable import TextualSelect

from council_app.store.base import HOT_KEYS, DocumentView, SessionRow
from council_app.store.schema import JSONDocument, session_state, sessions

# Per process; gunicorn workers each have one.  A completed session's large values are
# about the size of its document (a few hundred KB), so this keeps the last ~200 of them.
CACHE_BUDGET_BYTES = 64 * 1024 * 1024

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

_ROW_COLUMNS = (
    "id",
    "user_id",
    "question",
    "status",
    "current_step",
    "cost",
    "total_tokens",
    "created_at",
    "updated_at",
    "deleted_at",
)


def raw_column(index: int) -> str:
    return f"raw_{index}"


@lru_cache(maxsize=16)
def view_statement(small_keys: tuple[str, ...], raw_keys: tuple[str, ...]) -> TextualSelect:
    """One prebuilt statement per key set (the keys are constants of the API, checked here
    and written into the SQL; only the session id is a parameter)."""
    for key in small_keys + raw_keys:
        if not _KEY.match(key):
            raise ValueError(f"not a plain document key: {key!r}")
    small = ", ".join(f"'{k}'" for k in small_keys) or "NULL"
    raws = "".join(
        f",\n  (d.doc -> '{k}')::text AS {raw_column(i)}" for i, k in enumerate(raw_keys)
    )
    sql = f"""
SELECT {", ".join(f"m.{c}" for c in _ROW_COLUMNS)},
  s.progress, s.xmin::text AS version,
  jsonb_typeof(d.doc) = 'object' AS is_object,
  CASE WHEN jsonb_typeof(d.doc) = 'object' THEN (
    SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(d.doc) AS e
    WHERE e.key IN ({small})
  ) END AS small{raws}
FROM sessions AS m
JOIN session_state AS s ON s.session_id = m.id
CROSS JOIN LATERAL (SELECT s.state || '{{}}'::jsonb AS doc OFFSET 0) AS d
WHERE m.id = :sid
"""
    types = {
        "progress": session_state.c.progress.type,
        "version": Text(),
        "is_object": Boolean(),
        "small": JSONDocument,
        **{raw_column(i): Text() for i in range(len(raw_keys))},
    }
    columns = [sessions.c[name] for name in _ROW_COLUMNS]
    return text(sql).columns(*columns, **types)


_HEAD_SQL = f"""
SELECT {", ".join(f"m.{c}" for c in _ROW_COLUMNS)}, s.progress, s.xmin::text AS version
FROM sessions AS m
JOIN session_state AS s ON s.session_id = m.id
WHERE m.id = :sid
"""
# The row version and the hot column only: what a cached view needs checked per request.
HEAD_STATEMENT = text(_HEAD_SQL).columns(
    *[sessions.c[name] for name in _ROW_COLUMNS],
    progress=session_state.c.progress.type,
    version=Text(),
)

Reader = Callable[[Callable[[Connection], Any]], Any]  # the store's retrying read


@dataclass(frozen=True)
class _Cached:
    small: bytes  # the document's small keys, as JSON (parsed per request: callers mutate)
    raw: dict[str, str | None]
    size: int


class ViewReader:
    """``read_view`` for PostgreSQL, with the per-process cache described above."""

    def __init__(self, budget_bytes: int = CACHE_BUDGET_BYTES) -> None:
        self.budget = budget_bytes
        self._entries: OrderedDict[tuple[Any, ...], _Cached] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def read(
        self,
        read: Reader,
        session_id: str,
        small_keys: tuple[str, ...],
        raw_keys: tuple[str, ...],
    ) -> DocumentView | None:
        if set(raw_keys) & set(HOT_KEYS):
            raise ValueError("hot keys cannot be read as raw text")
        head = read(lambda conn: conn.execute(HEAD_STATEMENT, {"sid": session_id}).first())
        if head is None:
            return None  # no document here: the caller's fallback (legacy file) decides
        key = (session_id, small_keys, raw_keys)
        with self._lock:
            cached = self._entries.get((*key, head.version))
            if cached is not None:
                self._entries.move_to_end((*key, head.version))
                self.hits += 1
        if cached is None:
            self.misses += 1
            stmt = view_statement(small_keys, raw_keys)
            row = read(lambda conn: conn.execute(stmt, {"sid": session_id}).first())
            if row is None or not row.is_object:
                return None  # gone meanwhile, or not an object: the caller's fallback
            raw = {k: getattr(row, raw_column(i)) for i, k in enumerate(raw_keys)}
            small_json = orjson.dumps(row.small or {})
            size = len(small_json) + sum(len(t) for t in raw.values() if t is not None)
            cached = _Cached(small_json, raw, size)
            self._store((*key, row.version), cached)
            head = row
        small = orjson.loads(cached.small)
        hot = head.progress if isinstance(head.progress, dict) else {}
        small.update((k, hot[k]) for k in small_keys if k in hot)
        return DocumentView(SessionRow.from_db(head), small, dict(cached.raw))

    def _store(self, key: tuple[Any, ...], entry: _Cached) -> None:
        if entry.size > self.budget // 4:
            return  # one huge document must not flush everyone else's
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._entries[key] = entry
            self._bytes += entry.size
            while self._bytes > self.budget and self._entries:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.size
