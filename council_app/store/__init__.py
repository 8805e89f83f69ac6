"""State storage: one interface (``base``), one module per backend."""

from __future__ import annotations

from council_app.settings import Settings
from council_app.store.base import (
    HOT_KEYS,
    HotRow,
    ProgressWrite,
    RevisionConflict,
    SessionRow,
    StateStore,
    StoredState,
    StoreError,
    StoreUnavailable,
)


def build_store(settings: Settings) -> StateStore:
    """The backend named by DATABASE_URL (PostgreSQL, or SQLite plus state.json files),
    wrapped in the decorators of the move off the old server:

    - ``LegacyFileFallback``: sessions that exist only as ``state.json`` files are served
      (listed for their owners, read, adopted on first write); on the embedded backend,
      files newer than their rows are laid over them at start (a rollback).
    - ``StateFileMirror`` (PostgreSQL, ``STATE_FILE_MIRROR``, on by default): step writes
      copied to ``state.json`` in the background, so that a rollback loses nothing.

    Either can be dropped from here once the migration is done.
    """
    from council_app.store.legacy_fallback import LegacyFileFallback

    backend: StateStore
    if settings.backend == "postgresql":
        from council_app.store.postgres import PostgresStore

        backend = PostgresStore(settings)
    else:
        from council_app.store.sqlite_files import SqliteFileStore

        backend = SqliteFileStore(settings)
    embedded = settings.backend != "postgresql"
    store: StateStore = LegacyFileFallback(
        backend, settings.sessions_dir, settings.legacy_owner, reconcile=embedded
    )
    if not embedded and settings.state_file_mirror:
        from council_app.store.mirror import StateFileMirror

        store = StateFileMirror(store, settings.sessions_dir)
    return store


__all__ = [
    "HOT_KEYS",
    "HotRow",
    "ProgressWrite",
    "RevisionConflict",
    "SessionRow",
    "StateStore",
    "StoreError",
    "StoreUnavailable",
    "StoredState",
    "build_store",
]
