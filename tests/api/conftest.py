from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

import pytest
from flask import Flask
from flask.testing import FlaskClient

from council_app import create_app
from council_app.services import Services
from council_app.settings import Settings


@pytest.fixture
def app(backend_settings: Settings) -> Iterator[Flask]:
    overrides = asdict(backend_settings)
    overrides.update(openai_api_key=None, offline_latency_ms=0, state_flush_interval_ms=50)
    application = create_app(overrides)
    application.config["TESTING"] = True
    yield application
    application.extensions["council"].shutdown()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def svc(app: Flask) -> Services:
    return app.extensions["council"]
