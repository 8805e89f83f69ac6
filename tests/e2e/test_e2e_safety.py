"""Hostile and failing input through the UI: HTML injection, refused uploads, cancel.

Model output and user text are shown as text everywhere (the UI builds DOM nodes, never
HTML strings), and the page's CSP forbids inline script besides. These tests prove the
first layer on its own: no injected element appears and no injected handler runs.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .conftest import DESKTOP, Shots, open_page

INJECT_QUESTION = (
    'Is <img src=x onerror="window.__pwned=1"> safe? '
    "<script>window.__pwned=2</script> <b>bold?</b> [click](javascript:window.__pwned=3)"
)
INJECT_NAME = '<img src=y onerror="window.__pwned=4">Eve</b>'


def assert_not_injected(page: Page) -> None:
    """No element from the payloads exists and none of their scripts ran."""
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x], img[src=y]").count() == 0
    assert page.locator("main script, aside script, main b").count() == 0
    assert page.locator('a[href^="javascript:"]').count() == 0


@pytest.mark.e2e
def test_html_injection_renders_as_text(desktop: tuple[Page, Any], shots: Shots) -> None:
    page, _ = desktop
    page.goto("/")
    page.get_by_label("Your question").fill(INJECT_QUESTION)
    page.get_by_role("button", name="Build council").click()
    cards = page.locator("[data-testid=agent-card]")
    expect(cards.first).to_be_visible()
    expect(page.locator("[data-testid=session-question]")).to_have_text(INJECT_QUESTION)
    sid = re.search(r"/s/([^/]+)/", page.url).group(1)  # type: ignore[union-attr]
    item = page.locator(f'li.session-item[data-session-id="{sid}"] .session-question')
    expect(item).to_contain_text('<img src=x onerror="window.__pwned=1">')
    assert_not_injected(page)

    # An agent named with markup: stored as given, shown as text on every page.
    page.locator('[data-field="agents[0].name"]').fill(INJECT_NAME)
    expect(cards.first.locator("h3")).to_have_text(INJECT_NAME)
    page.get_by_role("button", name="Save and execute").click()
    expect(page.locator("[data-testid=run-card] h3").first).to_have_text(INJECT_NAME)
    statuses = page.locator("[data-testid=agent-exec-status]")
    for i in range(statuses.count()):
        expect(statuses.nth(i)).to_have_text("Done", timeout=30_000)
    page.get_by_role("button", name="Start peer review").click()
    expect(page.locator("[data-testid=session-status]")).to_have_text(
        "Review complete", timeout=30_000
    )
    assert_not_injected(page)
    shots(page, "injection-run")

    # Results: the model's markdown quotes the question; chart labels carry the name.
    page.locator("[data-testid=to-results]").click()
    proposal = page.locator("[data-testid=proposal]").first
    expect(proposal.locator("h3.agent-title")).to_have_text(INJECT_NAME)
    for summary in page.locator("summary").all():
        summary.click()
    markdown_text = page.locator(".markdown").first.inner_text()
    assert "<img src=x" in markdown_text or "<script>" in markdown_text, markdown_text[:300]
    labels = page.locator(".bar-chart .chart-label").all_text_contents()
    assert any(label.startswith("<img src=y") for label in labels), labels
    assert_not_injected(page)
    shots(page, "injection-results")

    page.locator("[data-testid=to-verdict]").click()
    page.get_by_role("button", name="Synthesize verdict").click()
    verdict = page.locator("[data-testid=verdict]")
    expect(verdict.locator("h3").first).to_be_visible(timeout=30_000)
    assert_not_injected(page)
    shots(page, "injection-verdict")

    summary = page.request.get(f"/api/sessions/{sid}/summary").json()
    assert summary["council_config"]["agents"][0]["name"] == INJECT_NAME


@pytest.mark.e2e
def test_upload_errors_shown_inline(desktop: tuple[Page, Any], shots: Shots) -> None:
    page, _ = desktop
    page.goto("/")
    # An empty question is caught before any request.
    page.get_by_role("button", name="Build council").click()
    expect(page.get_by_text("Enter a question for the council.")).to_be_visible()
    expect(page.get_by_label("Your question")).to_be_focused()

    page.get_by_label("Your question").fill("Can we ship this binary?")
    page.locator("[data-testid=file-input]").set_input_files(
        files=[{"name": "tool.exe", "mimeType": "application/octet-stream", "buffer": b"MZ\x90"}]
    )
    expect(page.locator(".file-chip-warning .file-problem")).to_contain_text(".exe")
    page.get_by_role("button", name="Build council").click()
    # The API's own 415 detail replaces the early warning, next to the file field.
    error = page.locator("[data-testid=files-error]")
    expect(error).to_contain_text("File 'tool.exe' has type .exe")
    expect(error).to_contain_text("allowed types are")
    expect(page).to_have_url(re.compile(r"/$"))
    shots(page, "upload-refused")

    page.get_by_role("button", name="Remove tool.exe").click()
    expect(page.locator(".file-chip")).to_have_count(0)
    expect(error).to_be_empty()


@pytest.mark.e2e
def test_cancel_running_execution(browser: Any, slow_server: str, shots: Shots) -> None:
    context, page, watch = open_page(browser, slow_server, DESKTOP)
    try:
        page.goto("/")
        page.get_by_label("Your question").fill("Should we cancel this run?")
        page.get_by_role("button", name="Build council").click()
        expect(page.locator("[data-testid=agent-card]").first).to_be_visible(timeout=30_000)
        page.get_by_role("button", name="Save and execute").click()
        cancel = page.get_by_role("button", name="Cancel", exact=True)
        expect(cancel).to_be_visible()
        expect(page.locator("[data-testid=agent-exec-status]").first).to_have_text("Thinking")
        shots(page, "before-cancel")
        cancel.click()
        expect(page.locator("[data-testid=session-status]")).to_have_text(
            "Execution cancelled", timeout=30_000
        )
        expect(page.locator("[data-testid=execution-error]")).to_contain_text(
            "Execution cancelled."
        )
        # Agents that never started are marked per card as cancelled (amber), not failed.
        cancelled = page.locator("[data-testid=agent-exec-status]", has_text="Cancelled")
        expect(cancelled.first).to_be_visible()
        expect(cancelled.first).to_have_attribute("data-state", "cancelled")
        expect(page.locator(".run-card.failed")).to_have_count(0)
        expect(cancel).to_be_hidden()
        expect(page.get_by_role("button", name="Run again")).to_be_visible()
        shots(page, "cancelled")
    finally:
        context.close()
    assert watch.errors == [], watch.errors
    assert watch.foreign_requests == [], watch.foreign_requests


HOSTILE_MARKDOWN = r"""# Title <script>window.__pwned=5</script>
<img src=z onerror="window.__pwned=6"> and <a href="javascript:window.__pwned=7">x</a>
[bad link](javascript:window.__pwned=8) [data](data:text/html,<b>x</b>) [ok](https://example.com/a_(b))
**bold <b>inner</b>** `code <i>` <iframe src="https://example.com"></iframe>

- item <svg onload="window.__pwned=9">
  - nested [x](JAVASCRIPT:alert(1))

| A <b>h</b> | B |
|---|---|
| <u>1</u> | 2 |

```
<style>body{display:none}</style>
```
"""
ALLOWED_TAGS = {
    "H3", "H4", "H5", "H6", "P", "EM", "STRONG", "DEL", "CODE", "PRE", "A", "UL", "OL",
    "LI", "BLOCKQUOTE", "HR", "BR", "DIV", "TABLE", "THEAD", "TBODY", "TR", "TH", "TD", "INPUT",
}  # fmt: skip


@pytest.mark.e2e
def test_markdown_renderer_builds_only_safe_nodes(desktop: tuple[Page, Any]) -> None:
    page, _ = desktop
    page.goto("/")
    found = page.evaluate(
        """async (source) => {
            const {renderMarkdown} = await import('/assets/js/markdown.js');
            const box = document.createElement('div');
            box.append(renderMarkdown(source));
            document.querySelector('main').append(box);
            const all = [...box.querySelectorAll('*')];
            return {
                tags: [...new Set(all.map((el) => el.tagName))],
                handlers: all.flatMap((el) => [...el.attributes].map((a) => a.name))
                    .filter((name) => name.startsWith('on') || name === 'style' || name === 'src'),
                hrefs: all.filter((el) => el.hasAttribute('href'))
                    .map((el) => el.getAttribute('href')),
                text: box.textContent,
            };
        }""",
        HOSTILE_MARKDOWN,
    )
    assert set(found["tags"]) <= ALLOWED_TAGS, found["tags"]
    assert found["handlers"] == []
    assert "https://example.com/a_(b)" in found["hrefs"], found["hrefs"]
    assert all(re.match(r"(https?:|mailto:|#)", href) for href in found["hrefs"]), found["hrefs"]
    for literal in ("<script>", "<img src=z", "<iframe", "<svg onload", "<style>", "<b>h</b>"):
        assert literal in found["text"], literal
    assert page.evaluate("window.__pwned") is None
