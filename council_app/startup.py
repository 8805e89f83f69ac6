"""Start-up that fails with one readable line instead of a traceback, and stops gunicorn.

Exit code 3 is gunicorn's WORKER_BOOT_ERROR: the arbiter halts instead of starting the
worker again (any other code, 2 included, makes it respawn workers forever).  Both a bad
setting and a database whose schema this code cannot use (the old server's tables not yet
migrated, or a revision newer than this code) are such errors: nothing a restart fixes.
An *unreachable* database is not one of them (start-up finishes once it answers).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from council_app.settings import ConfigError, Settings
from council_app.store.schema_versions import (
    SchemaNotUsable,
    SchemaState,
    SchemaStatus,
    check,
    describe_refusal,
)

T = TypeVar("T")

EXIT_BOOT_ERROR = 3  # gunicorn.arbiter.Arbiter.WORKER_BOOT_ERROR
PREFLIGHT_QUERY_S = 5.0  # the master's schema look, beyond the connect timeout


def run_or_exit(factory: Callable[[], T]) -> T:
    try:
        return factory()
    except ConfigError as e:
        print(f"Configuration error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_BOOT_ERROR) from None
    except SchemaNotUsable as e:
        print(f"Database not usable: {e}", file=sys.stderr)
        raise SystemExit(EXIT_BOOT_ERROR) from None


def preflight() -> str | None:
    """In gunicorn's master, before any worker is forked: the one line that makes start-up
    refuse, or None.  Refusing here stops gunicorn with one line whatever the worker count
    (when several workers exit 3 at once, gunicorn's arbiter reports the halt twice).
    The workers check again (``run_or_exit``): this is the early, tidy path, not the only one.
    """
    from council_app.settings import load_settings

    try:
        settings = load_settings()
    except ConfigError as e:
        return f"Configuration error: {e}"
    found: list[SchemaStatus | None] = [None]
    # Bounded: a database that accepts the connection and then hangs must not hold up the
    # master (the workers deal with that one: 503 until it answers).
    probe = threading.Thread(
        target=lambda: found.__setitem__(0, _schema_status(settings)),
        name="schema-preflight",
        daemon=True,
    )
    probe.start()
    probe.join(settings.db_connect_timeout_s * 2 + PREFLIGHT_QUERY_S)
    status = found[0]
    if status is None:
        return None  # unreachable: the workers start and answer 503 until it answers
    unusable = status.state is SchemaState.UNKNOWN or (
        status.state is SchemaState.LEGACY and settings.backend == "postgresql"
    )  # the embedded backend adopts the old server's SQLite file at start
    return f"Database not usable: {describe_refusal(status)}" if unusable else None


def _schema_status(settings: Settings) -> SchemaStatus | None:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    pg = settings.backend == "postgresql"
    args = {"connect_timeout": settings.db_connect_timeout_s} if pg else {}
    engine = create_engine(settings.database_url, connect_args=args)
    try:
        with engine.connect() as conn:
            return check(conn)
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()
