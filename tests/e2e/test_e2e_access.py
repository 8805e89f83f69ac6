"""Keyboard use, the phone-width drawer and prefers-color-scheme: dark."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .conftest import Shots


@pytest.mark.e2e
def test_keyboard_only_start_and_delete_cancelled(desktop: tuple[Page, Any], shots: Shots) -> None:
    page, _ = desktop
    page.goto("/")
    expect(page.get_by_role("heading", name="Ask the council")).to_be_visible()
    # The skip link is the first stop and jumps past the header and the sidebar.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Your question")).to_be_focused()
    page.keyboard.type("Which database should a small team pick for a new service?")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Choose files…")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Build council")).to_be_focused()
    shots(page, "keyboard-start")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/s/[^/]+/council$"))
    expect(page.locator("[data-testid=agent-card]").first).to_be_visible()
    sid = re.search(r"/s/([^/]+)/", page.url).group(1)  # type: ignore[union-attr]

    # Edit a field with the keyboard and save with Enter on the focused button.
    name = page.locator('[data-field="agents[0].name"]')
    name.focus()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("Keyboard Kate")
    page.get_by_role("button", name="Save council").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".toast", has_text="Council saved")).to_be_visible()

    # The delete dialog opens on Enter, starts on Cancel, and Escape closes it.
    delete = page.locator(f'li.session-item[data-session-id="{sid}"] .delete-session')
    delete.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    shots(page, "keyboard-dialog")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(delete).to_be_focused()
    expect(page.locator(f'li.session-item[data-session-id="{sid}"]')).to_have_count(1)

    # The stepper is plain links: Tab to "Execute & review" and follow it.
    page.get_by_role("link", name=re.compile("Execute & review")).focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/run$"))
    expect(page.get_by_role("button", name="Execute council")).to_be_visible()


@pytest.mark.e2e
def test_phone_drawer_and_dark_scheme(phone: tuple[Page, Any], shots: Shots) -> None:
    page, _ = phone
    # Reduced motion also stops the drawer's slide, so its screenshot is not mid-way.
    page.emulate_media(color_scheme="dark", reduced_motion="reduce")
    page.goto("/")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(17, 20, 24)", background
    sidebar = page.locator("#sidebar")
    expect(sidebar).to_be_hidden()
    page.get_by_label("Your question").fill("Dark mode on a phone: does the council still work?")
    page.get_by_role("button", name="Build council").click()
    expect(page.locator("[data-testid=agent-card]").first).to_be_visible()
    shots(page, "dark-phone-council")

    toggle = page.locator("#sidebar-toggle")
    toggle.click()
    expect(sidebar).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    shots(page, "dark-phone-drawer")
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(toggle).to_be_focused()
    toggle.click()
    expect(sidebar).to_be_visible()
    page.mouse.click(385, 300)  # a tap outside (right of the drawer) closes it too
    expect(sidebar).to_be_hidden()

    page.get_by_role("button", name="Save and execute").click()
    statuses = page.locator("[data-testid=agent-exec-status]")
    expect(statuses.first).to_be_visible()
    for i in range(statuses.count()):
        expect(statuses.nth(i)).to_have_text("Done", timeout=30_000)
    shots(page, "dark-phone-run")
