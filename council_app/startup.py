"""Start-up that fails with one readable line instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from council_app.settings import ConfigError

T = TypeVar("T")


def run_or_exit(factory: Callable[[], T]) -> T:
    try:
        return factory()
    except ConfigError as e:
        print(f"Configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
