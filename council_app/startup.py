"""Start-up that fails with one readable line instead of a traceback, and stops gunicorn.

Exit code 3 is gunicorn's WORKER_BOOT_ERROR: the arbiter halts instead of starting the
worker again (any other code, 2 included, makes it respawn workers forever).  Both a bad
setting and a database whose schema this code cannot use (the old server's tables not yet
migrated, or a revision newer than this code) are such errors: nothing a restart fixes.
An *unreachable* database is not one of them (start-up finishes once it answers).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from council_app.settings import ConfigError
from council_app.store.schema_versions import SchemaNotUsable

T = TypeVar("T")

EXIT_BOOT_ERROR = 3  # gunicorn.arbiter.Arbiter.WORKER_BOOT_ERROR


def run_or_exit(factory: Callable[[], T]) -> T:
    try:
        return factory()
    except ConfigError as e:
        print(f"Configuration error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_BOOT_ERROR) from None
    except SchemaNotUsable as e:
        print(f"Database not usable: {e}", file=sys.stderr)
        raise SystemExit(EXIT_BOOT_ERROR) from None
