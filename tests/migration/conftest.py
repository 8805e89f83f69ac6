"""Fixtures for the migration tests: a generated legacy tree and an in-process CLI runner."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from legacy_tree import MixedTree, write_mixed_tree

from council_app.migration.cli import main


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


@pytest.fixture
def cli(pg_url: str) -> Cli:
    """Run migrate_state in-process against this test's schema; JSON summary by default."""

    def run(*argv: str, url: str | None = pg_url, json: bool = True) -> CliResult:
        env = {} if url is None else {"DATABASE_URL": url}
        out, err = io.StringIO(), io.StringIO()
        args = [*argv, "--json"] if json else list(argv)
        code = main(args, env, stdout=out, stderr=err)
        return CliResult(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def mixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MixedTree:
    """The mixed legacy tree, with the current directory where its agent_council.db is."""
    tree = write_mixed_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tree


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
