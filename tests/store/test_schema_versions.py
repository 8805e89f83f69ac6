"""Alembic revisions: empty databases reach head, pre-Alembic ones are stamped, and the
revisions build exactly the tables ``schema.py`` describes (on both backends)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from council_app.settings import Settings
from council_app.store import build_store
from council_app.store.schema import GIN_INDEX_NAME, metadata, session_state, sessions
from council_app.store.schema_versions import (
    BASELINE,
    SchemaNotUsable,
    SchemaState,
    check,
    head_revision,
    upgrade_to_head,
)


def _engine(settings: Settings) -> sa.Engine:
    return sa.create_engine(settings.database_url)


def _diffs(conn: sa.Connection) -> list[Any]:
    """Differences between the database and schema.py; the GIN index is not a revision
    (it follows STATE_GIN_INDEX at every start) and alembic_version is Alembic's own."""
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return [
        d
        for d in compare_metadata(ctx, metadata)
        if "alembic_version" not in repr(d) and GIN_INDEX_NAME not in repr(d)
    ]


def test_empty_database_reaches_head_with_the_declared_schema(backend_settings) -> None:
    store = build_store(backend_settings)
    engine = _engine(backend_settings)
    with engine.connect() as conn:
        assert check(conn).state is SchemaState.EMPTY
    store.create_schema()
    with engine.connect() as conn:
        status = check(conn)
        assert (status.state, status.current) == (SchemaState.CURRENT, head_revision())
        assert _diffs(conn) == []
    store.create_schema()  # a second start changes nothing
    store.close()
    engine.dispose()


def test_pre_alembic_database_is_stamped_and_keeps_its_rows(backend_settings) -> None:
    engine = _engine(backend_settings)
    with engine.begin() as conn:
        # What the code before Alembic made (later tables come from later revisions).
        metadata.create_all(conn, tables=[sessions, session_state])
        conn.execute(
            sa.text(
                "INSERT INTO sessions (id, user_id, question, status, current_step, "
                "created_at, updated_at) VALUES ('s1', 'u', 'q', 'idle', 'input', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        assert check(conn).state is SchemaState.UNVERSIONED
    store = build_store(backend_settings)
    store.create_schema()
    with engine.connect() as conn:
        assert check(conn).state is SchemaState.CURRENT
        assert conn.execute(sa.text("SELECT count(*) FROM sessions")).scalar() == 1
        assert _diffs(conn) == []
    assert store.get_session("s1") is not None
    store.close()
    engine.dispose()


def test_unknown_newer_revision_is_refused(backend_settings) -> None:
    store = build_store(backend_settings)
    store.create_schema()
    engine = _engine(backend_settings)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with engine.begin() as conn, pytest.raises(SchemaNotUsable) as err:
        upgrade_to_head(conn)
    assert err.value.status.state is SchemaState.UNKNOWN
    assert "9999" in str(err.value)
    with pytest.raises(SchemaNotUsable):
        store.create_schema()
    store.close()
    engine.dispose()


def test_baseline_is_the_root_of_one_linear_chain() -> None:
    from council_app.store.schema_versions import script_directory

    script = script_directory()
    assert len(script.get_heads()) == 1
    revisions = list(script.walk_revisions())
    assert all(not r.is_merge_point for r in revisions)
    assert any(r.revision == BASELINE for r in revisions)
