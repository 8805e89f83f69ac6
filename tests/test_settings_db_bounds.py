"""The database bounds are settings with a checked range, like every other."""

from __future__ import annotations

import pytest

from council_app.settings import ConfigError, load_settings


def test_database_bounds_are_read_from_the_environment() -> None:
    settings = load_settings(
        {
            "DB_STATEMENT_TIMEOUT_MS": "2500",
            "DB_LOCK_TIMEOUT_MS": "400",
            "DB_POOL_TIMEOUT_MS": "750",
            "DB_KEEPALIVES_IDLE_S": "5",
            "DB_KEEPALIVES_INTERVAL_S": "1",
            "DB_KEEPALIVES_COUNT": "4",
        }
    )
    assert (settings.db_statement_timeout_ms, settings.db_lock_timeout_ms) == (2500, 400)
    assert settings.db_pool_timeout_s == 0.75
    assert (
        settings.db_keepalives_idle_s,
        settings.db_keepalives_interval_s,
        settings.db_keepalives_count,
    ) == (5, 1, 4)


@pytest.mark.parametrize(
    "name", ["DB_STATEMENT_TIMEOUT_MS", "DB_LOCK_TIMEOUT_MS", "DB_POOL_TIMEOUT_MS"]
)
@pytest.mark.parametrize("value", ["0", "soon", "-5"])
def test_a_bad_bound_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})
