"""The whole council workflow through the web UI, at desktop and phone widths.

Create a session with uploaded files (picker and drag-and-drop), build, edit an agent
(including a validation error shown next to its field), execute while watching the
progress reach Done, review, read results, synthesize, copy, download the summary,
delete. Screenshots of each step land in test-artifacts/e2e/.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .conftest import ARTIFACTS, Shots

# Records every progress text an agent card shows, from before the app script runs, so
# the test can prove it watched progress happen rather than only seeing the end state.
RECORD_PROGRESS = """
window.__seen = {exec: new Set(), review: new Set()};
new MutationObserver(() => {
  for (const el of document.querySelectorAll('[data-testid=agent-exec-status]'))
    window.__seen.exec.add(el.textContent);
  for (const el of document.querySelectorAll('[data-testid=agent-review-status]'))
    window.__seen.review.add(el.textContent);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""

DROP_FILE = """([name, content, type]) => {
  const dt = new DataTransfer();
  dt.items.add(new File([content], name, {type}));
  const zone = document.querySelector('[data-testid=dropzone]');
  for (const kind of ['dragenter', 'dragover', 'drop']) {
    zone.dispatchEvent(new DragEvent(kind, {bubbles: true, cancelable: true, dataTransfer: dt}));
  }
}"""


def session_id_from(page: Page) -> str:
    match = re.search(r"/s/([^/]+)/", page.url)
    assert match, page.url
    return match.group(1)


def no_horizontal_scroll(page: Page) -> None:
    """Nothing may stick out sideways (the phone-width layout check)."""
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"page scrolls sideways by {overflow}px at {page.viewport_size}"


def open_sidebar_if_collapsed(page: Page) -> None:
    toggle = page.locator("#sidebar-toggle")
    if toggle.is_visible() and toggle.get_attribute("aria-expanded") != "true":
        toggle.click()
        expect(page.locator("#sidebar")).to_be_visible()


def run_flow(page: Page, shots: Shots, width_name: str) -> None:
    page.add_init_script(RECORD_PROGRESS)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])

    # --- Start: question, one file by picker and one by drag-and-drop.
    page.goto("/")
    expect(page.get_by_role("heading", name="Ask the council")).to_be_visible()
    page.get_by_label("Your question").fill(
        "Should our team move the nightly batch jobs to an event-driven pipeline?"
    )
    page.locator("[data-testid=file-input]").set_input_files(
        files=[
            {
                "name": "notes.md",
                "mimeType": "text/markdown",
                "buffer": b"# Notes\nBatch runs take 6 hours; failures are found the next day.\n",
            }
        ]
    )
    page.evaluate(DROP_FILE, ["figures.csv", "job,hours\nbilling,3\nreports,2\n", "text/csv"])
    files = page.locator(".file-list .file-name")
    expect(files).to_have_text(["notes.md", "figures.csv"])
    shots(page, "start")

    # --- Build council.
    page.get_by_role("button", name="Build council").click()
    expect(page).to_have_url(re.compile(r"/s/[^/]+/council$"))
    sid = session_id_from(page)
    cards = page.locator("[data-testid=agent-card]")
    expect(cards.first).to_be_visible()
    agent_count = cards.count()
    assert agent_count >= 2
    expect(page.locator("[data-testid=session-question]")).to_contain_text("event-driven")
    summary = page.request.get(f"/api/sessions/{sid}/summary").json()
    assert summary["council_config"]["agents"], summary
    if width_name == "phone":
        no_horizontal_scroll(page)
    shots(page, "council-built")

    # --- Edit: a duplicate name is refused, with the error next to that field.
    first_name = page.locator('[data-field="agents[0].name"]').input_value()
    second = page.locator('[data-field="agents[1].name"]')
    second.fill(first_name)
    page.get_by_role("button", name="Save council").click()
    error = page.locator('[data-error-for="agents[1].name"]')
    expect(error).to_contain_text("used twice")
    expect(second).to_have_attribute("aria-invalid", "true")
    expect(second).to_be_focused()
    shots(page, "council-validation-error")

    second.fill("Risk Officer")
    card = cards.nth(1)
    card.get_by_label("Reasoning effort").select_option("high")
    card.get_by_label("Web search").check()
    card.get_by_label("Persona").fill("You look for what could go wrong and how to limit it.")
    # Add, duplicate and delete an agent; the council ends with one extra member.
    page.get_by_role("button", name="Add agent").click()
    expect(cards).to_have_count(agent_count + 1)
    expect(page.locator(f'[data-field="agents[{agent_count}].name"]')).to_be_focused()
    page.locator(f'[data-field="agents[{agent_count}].name"]').fill("Customer Advocate")
    page.locator(f'[data-field="agents[{agent_count}].persona"]').fill(
        "You speak for the customers who read the nightly reports."
    )
    cards.nth(agent_count).get_by_role("button", name=re.compile("^Duplicate")).click()
    expect(cards).to_have_count(agent_count + 2)
    expect(page.locator(f'[data-field="agents[{agent_count + 1}].name"]')).to_have_value(
        "Customer Advocate (copy)"
    )
    cards.nth(agent_count + 1).get_by_role("button", name=re.compile("^Delete")).click()
    expect(cards).to_have_count(agent_count + 1)
    page.get_by_role("button", name="Save council").click()
    expect(page.locator(".toast", has_text="Council saved")).to_be_visible()
    expect(page.locator("[data-error-for]:not(:empty)")).to_have_count(0)
    saved = page.request.get(f"/api/sessions/{sid}/summary").json()["council_config"]["agents"]
    assert [a["name"] for a in saved][1] == "Risk Officer"
    assert saved[1]["reasoning_effort"] == "high" and saved[1]["enable_web_search"] is True
    assert saved[-1]["name"] == "Customer Advocate"
    shots(page, "council-saved")

    # --- Execute, watching the progress text and bars until every agent is Done.
    page.get_by_role("button", name="Save and execute").click()
    expect(page).to_have_url(re.compile(r"/run$"))
    run_cards = page.locator("[data-testid=run-card]")
    expect(run_cards).to_have_count(agent_count + 1)
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_be_visible()
    shots(page, "executing")
    for i in range(agent_count + 1):
        expect(run_cards.nth(i).locator("[data-testid=agent-exec-status]")).to_have_text(
            "Done", timeout=30_000
        )
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_be_hidden()
    seen = page.evaluate("[...window.__seen.exec]")
    assert "Done" in seen and any(t not in ("Done", "Not started") for t in seen), seen
    expect(page.locator("[data-testid=session-status]")).to_have_text("Execution complete")
    tokens = page.locator("[data-testid=token-counter]").inner_text()
    assert int(tokens.replace(",", "")) > 0, tokens
    expect(page.locator("[data-testid=cost-counter]")).to_have_text(re.compile(r"^\$\d"))
    bars = page.locator("[data-testid=run-card] progress").first
    assert bars.evaluate("el => el.value") == 100
    shots(page, "executed")

    # --- Peer review.
    page.get_by_role("button", name="Start peer review").click()
    for i in range(agent_count + 1):
        expect(run_cards.nth(i).locator("[data-testid=agent-review-status]")).to_have_text(
            "Done", timeout=30_000
        )
    expect(page.locator("[data-testid=session-status]")).to_have_text("Review complete")
    shots(page, "reviewed")

    # --- Results: proposals, score charts, aggregated ranking.
    page.locator("[data-testid=to-results]").click()
    expect(page).to_have_url(re.compile(r"/results$"))
    expect(page.locator("[data-testid=ranking] li")).to_have_count(agent_count + 1)
    proposals = page.locator("[data-testid=proposal]")
    expect(proposals).to_have_count(agent_count + 1)
    expect(proposals.first.locator(".bar-chart .chart-bar").first).to_be_attached()
    proposals.first.get_by_text("Full proposal").click()
    expect(proposals.first.locator(".markdown h3, .markdown h4").first).to_be_visible()
    if width_name == "phone":
        no_horizontal_scroll(page)
    shots(page, "results")

    # --- Verdict: synthesize, rendered markdown, copy, download the summary.
    page.locator("[data-testid=to-verdict]").first.click()
    expect(page).to_have_url(re.compile(r"/verdict$"))
    page.get_by_role("button", name="Synthesize verdict").click()
    verdict = page.locator("[data-testid=verdict]")
    expect(verdict.locator("h3").first).to_be_visible(timeout=30_000)
    expect(verdict.locator("table")).to_have_count(1)
    expect(page.locator("[data-testid=session-status]")).to_have_text("Verdict complete")
    page.get_by_role("button", name="Copy verdict").click()
    expect(page.locator(".toast", has_text="Verdict copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("## ") and "TL;DR" in copied, copied[:200]
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download full session").click()
    download = download_info.value
    assert download.suggested_filename == f"council-session-{sid}.json"
    target = ARTIFACTS / f"summary-{width_name}.json"
    download.save_as(target)
    data = json.loads(target.read_text())
    assert data["session_id"] == sid
    assert data["chairman_verdict"] == copied
    assert data["status"] == "verdict_complete"
    assert len(data["execution_results"]["execution_results"]) == agent_count + 1
    if width_name == "phone":
        no_horizontal_scroll(page)
    shots(page, "verdict")

    # --- The session list shows it with status and cost; delete it with confirmation.
    open_sidebar_if_collapsed(page)
    item = page.locator(f'li.session-item[data-session-id="{sid}"]')
    expect(item).to_contain_text("Verdict complete")
    expect(item.locator(".session-cost")).to_have_text(re.compile(r"^\$"))
    shots(page, "sidebar")
    item.get_by_role("button", name=re.compile("^Delete session")).click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    shots(page, "delete-confirm")
    dialog.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator(f'li.session-item[data-session-id="{sid}"]')).to_have_count(0)
    assert page.request.get(f"/api/sessions/{sid}/summary").status == 410
    shots(page, "deleted")


@pytest.mark.e2e
def test_full_flow_desktop(desktop: tuple[Page, Any], shots: Shots) -> None:
    page, _ = desktop
    run_flow(page, shots, "desktop")


@pytest.mark.e2e
def test_full_flow_phone(phone: tuple[Page, Any], shots: Shots) -> None:
    page, _ = phone
    run_flow(page, shots, "phone")
