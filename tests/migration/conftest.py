"""Fixtures for the migration tests: a generated legacy tree and an in-process CLI runner."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from council_app.migration.cli import main
from tests.migration.legacy_tree import MixedTree, write_mixed_tree
from tests.migration.migration_helpers import Cli, CliResult


@pytest.fixture
def cli(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run migrate_state in-process against this test's schema; JSON summary by default.

    From the test's own directory: the tool reads an ``agent_council.db`` in the current
    directory (the old runbook's usage), and one left in the checkout must not leak in."""
    monkeypatch.chdir(tmp_path)

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
