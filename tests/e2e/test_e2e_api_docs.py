"""/api/docs in a real browser: Swagger UI renders this server's document from local files,
under its Content-Security-Policy, without a request leaving the box."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .conftest import Shots


@pytest.mark.e2e
def test_api_docs_render_offline(desktop: tuple[Page, Any], shots: Shots) -> None:
    page, watch = desktop
    page.goto("/api/docs")
    expect(page.get_by_text("Agent Council Server").first).to_be_visible()
    operation = page.locator(".opblock-summary-path", has_text="/api/sessions/{session_id}/status")
    expect(operation.first).to_be_visible()
    operation.first.click()  # expands: parameters and responses come from the document
    expect(page.get_by_text("Progress of a session").first).to_be_visible()
    shots(page, "api-docs")
    # The desktop fixture fails the test on script errors (CSP violations included) and on
    # any request to another host.
    assert watch.foreign_requests == []
