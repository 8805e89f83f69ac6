"""PostgreSQL-only schema facts: concurrent creation, fillfactor, the optional GIN index."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from council_app.store.postgres import PostgresStore
from council_app.store.schema import GIN_INDEX_NAME, SESSION_STATE_FILLFACTOR
from tests.conftest import postgres_settings


def _index_exists(store: PostgresStore) -> bool:
    with store.engine.connect() as conn:
        return (
            conn.execute(
                sa.text("SELECT to_regclass(:name) IS NOT NULL"),
                {"name": GIN_INDEX_NAME},
            ).scalar()
            is True
        )


def test_schema_created_once_by_racing_workers(pg_url, tmp_path) -> None:
    stores = [PostgresStore(postgres_settings(pg_url, tmp_path)) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def start(store: PostgresStore) -> None:
        barrier.wait()
        try:
            store.create_schema()
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=start, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with stores[0].engine.connect() as conn:
        options = conn.execute(
            sa.text("SELECT reloptions FROM pg_class WHERE oid = 'session_state'::regclass")
        ).scalar()
    assert f"fillfactor={SESSION_STATE_FILLFACTOR}" in options
    assert _index_exists(stores[0])  # on by default (the runbook's index)
    for s in stores:
        s.close()


def test_gin_index_follows_the_setting(pg_url, tmp_path) -> None:
    on = PostgresStore(postgres_settings(pg_url, tmp_path, state_gin_index=True))
    on.create_schema()
    assert _index_exists(on)
    off = PostgresStore(postgres_settings(pg_url, tmp_path, state_gin_index=False))
    off.create_schema()
    assert not _index_exists(off)
    on.close()
    off.close()
