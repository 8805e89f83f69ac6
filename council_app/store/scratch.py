"""A throwaway PostgreSQL schema, for the test suite and the benchmarks.

Each user gets a URL whose ``search_path`` is a fresh schema, so everything the app
creates lands there and is dropped with it: isolation on one real server, no mocks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import make_url


@contextmanager
def scratch_schema(admin_url: str, prefix: str = "t") -> Iterator[str]:
    """Yield a URL whose search_path is a new schema; drop the schema on the way out."""
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(admin_url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(admin_url).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()
