"""PostgreSQL reads that hand large JSON values out as text, for ``read_view``.

A completed session is hundreds of KB of JSON.  Loading it into Python dicts and dumping
it again for ``/summary`` costs more than the database's own output of the same values,
so the statement below returns each large value already serialised (``(doc -> key)::text``)
and only the small keys as parsed JSON.  The document is detoasted once per row (the
lateral subquery), not once per key.
"""

from __future__ import annotations

import re
from functools import lru_cache

from sqlalchemy import Boolean, Text, TextClause, text

from council_app.store.schema import JSONDocument, session_state, sessions

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
def view_statement(small_keys: tuple[str, ...], raw_keys: tuple[str, ...]) -> TextClause:
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
  s.progress,
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
        "is_object": Boolean(),
        "small": JSONDocument,
        **{raw_column(i): Text() for i in range(len(raw_keys))},
    }
    columns = [sessions.c[name] for name in _ROW_COLUMNS]
    return text(sql).columns(*columns, **types)
