from __future__ import annotations

from collections.abc import Iterator

import pytest

from council_app.settings import Settings
from council_app.store import StateStore, build_store


@pytest.fixture
def store(backend_settings: Settings) -> Iterator[StateStore]:
    s = build_store(backend_settings)
    s.create_schema()
    yield s
    s.close()
