"""State storage: one interface (``base``), one module per backend."""

from __future__ import annotations

from council_app.settings import Settings
from council_app.store.base import (
    HOT_KEYS,
    ProgressWrite,
    RevisionConflict,
    SessionRow,
    StateStore,
    StoredState,
    StoreError,
    StoreUnavailable,
)


def build_store(settings: Settings) -> StateStore:
    """The backend named by DATABASE_URL: PostgreSQL, or SQLite plus state.json files."""
    if settings.backend == "postgresql":
        from council_app.store.postgres import PostgresStore

        return PostgresStore(settings)
    from council_app.store.sqlite_files import SqliteFileStore

    return SqliteFileStore(settings)


__all__ = [
    "HOT_KEYS",
    "ProgressWrite",
    "RevisionConflict",
    "SessionRow",
    "StateStore",
    "StoreError",
    "StoreUnavailable",
    "StoredState",
    "build_store",
]
