"""Helpers shared by the migration tests (kept out of conftest.py so they import by name)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def summary(self) -> dict[str, Any]:
        return orjson.loads(self.out)

    @property
    def counts(self) -> dict[str, int]:
        return self.summary["counts"]


Cli = Callable[..., CliResult]


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under root with its mtime and content hash: proves nothing was touched."""
    found = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if name.endswith(("-wal", "-shm")):
                continue  # SQLite's read-only WAL companions
            found[str(path)] = (
                path.stat().st_mtime_ns,
                hashlib.sha256(path.read_bytes()).hexdigest(),
            )
    return found


def canonical(data: bytes | dict[str, Any]) -> bytes:
    doc = orjson.loads(data) if isinstance(data, bytes) else data
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
