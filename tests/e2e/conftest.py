"""End-to-end fixtures: the real app on a loopback port, driven by Debian's headless Chromium.

The server is ``create_app`` on the embedded SQLite+files backend in a temp folder with the
offline provider (no API key), served by werkzeug in a thread. Playwright never downloads
a browser: it launches /usr/bin/chromium (``scripts/install_browser.sh`` installs it).
Every test gets a fresh browser context; its screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from council_app import create_app

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def _chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


def _require_browser() -> str:
    """In CI a missing browser fails the run; on a laptop the e2e tests skip with the fix."""
    path = _chromium_path()
    problem = None
    if path is None:
        problem = "Chromium is not installed: run `bash scripts/install_browser.sh`"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            problem = "the playwright package is missing: pip install -r requirements-dev.txt"
    if problem:
        if IN_CI:
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    assert path is not None
    return path


#: The app behind each served URL, for tests that change the offline stand-in mid-test.
APPS: dict[str, Any] = {}


@contextmanager
def serve_app(folder: Path, fail_members: tuple[str, ...] = (), **settings: Any) -> Iterator[str]:
    """Run the real app (API and UI) on 127.0.0.1:<free port>; yields its base URL.

    ``fail_members``: names whose calls the offline stand-in fails on purpose (its
    OFFLINE_FAIL_MEMBERS); the builder and the chairman answer as "Council member".
    """
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """One line per request would bury the test output."""

    app = create_app(
        {
            "database_url": f"sqlite:///{folder / 'agent_council.db'}",
            "sessions_dir": folder / "sessions",
            "openai_api_key": None,
            "openai_base_url": None,
            "auth_mode": "dev",
            "auth_tokens": (),
            **settings,
        }
    )
    if fail_members:
        provider = app.extensions["council"].provider
        provider.fail_members = frozenset(n.casefold() for n in fail_members)
    if "web" not in app.blueprints:  # the factory registers it; keep the tests independent
        from council_app.web import bp

        app.register_blueprint(bp)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    APPS[f"http://127.0.0.1:{server.server_port}"] = app
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        svc = app.extensions.get("council")
        if svc is not None and hasattr(svc, "shutdown"):
            svc.shutdown()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server most tests share: offline provider, slow enough to see progress move."""
    with serve_app(tmp_path_factory.mktemp("e2e-server"), offline_latency_ms=800) as url:
        yield url


@pytest.fixture(scope="module")
def quick_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Offline provider with a short latency: progress is visible, tests stay quick."""
    with serve_app(tmp_path_factory.mktemp("e2e-quick"), offline_latency_ms=300) as url:
        yield url


@pytest.fixture
def budget_server(tmp_path: Path) -> Iterator[str]:
    """Budgets on: every user may spend $5 a day (USER_DAILY_BUDGET_USD)."""
    with serve_app(tmp_path, user_daily_budget_usd=5.0) as url:
        yield url


@pytest.fixture
def failing_build_server(tmp_path: Path) -> Iterator[str]:
    """The builder's (and the chairman's) calls fail, as a broken gateway would."""
    with serve_app(tmp_path, fail_members=("council member",), offline_latency_ms=600) as url:
        yield url


@pytest.fixture
def slow_server(tmp_path: Path) -> Iterator[str]:
    """One agent at a time with long model calls, so a test can cancel mid-run."""
    with serve_app(tmp_path, offline_latency_ms=2500, council_max_parallel=1) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole run (contexts isolate the tests)."""
    executable = _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watch:
    """What a page did that a test should not allow: script errors, off-box requests."""

    base_url: str
    errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def on_console(self, message: Any) -> None:
        # Failed API calls (415, 422, ...) are logged by Chromium as resource errors; they
        # are expected in tests of error display. Anything else is a bug.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(message.text)

    def on_request(self, request: Any) -> None:
        url = request.url
        if not (url.startswith(self.base_url) or url.startswith(("blob:", "data:"))):
            self.foreign_requests.append(url)


class Shots:
    """Numbered full-page screenshots under test-artifacts/e2e/<test>/."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)

    def __call__(self, page: Any, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        # From the top, so sticky bars sit where a person first sees them.
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(path), full_page=True)
        return path


def _slug(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1]).strip("_")


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    """Screenshot helper writing under test-artifacts/e2e/<test name>/."""
    return Shots(ARTIFACTS / _slug(request.node.nodeid))


def open_page(browser: Any, base_url: str, viewport: dict[str, int], **context_args: Any) -> tuple:
    """A fresh context and page with error and network watching wired in."""
    context = browser.new_context(
        viewport=viewport,
        base_url=base_url,
        accept_downloads=True,
        **context_args,
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    watch = Watch(base_url)
    page.on("console", watch.on_console)
    page.on("pageerror", lambda exc: watch.errors.append(f"pageerror: {exc}"))
    page.on("request", watch.on_request)
    return context, page, watch


@pytest.fixture
def desktop(browser: Any, live_server: str) -> Iterator[tuple]:
    """(page, watch) at 1280 px; fails the test on script errors or off-box requests."""
    context, page, watch = open_page(browser, live_server, DESKTOP)
    try:
        yield page, watch
    finally:
        context.close()
    assert watch.errors == [], f"browser errors: {watch.errors}"
    assert watch.foreign_requests == [], f"requests off this server: {watch.foreign_requests}"


@pytest.fixture
def phone(browser: Any, live_server: str) -> Iterator[tuple]:
    """(page, watch) at a 390 px phone width, touch enabled."""
    context, page, watch = open_page(
        browser, live_server, PHONE, is_mobile=True, has_touch=True, device_scale_factor=1
    )
    try:
        yield page, watch
    finally:
        context.close()
    assert watch.errors == [], f"browser errors: {watch.errors}"
    assert watch.foreign_requests == [], f"requests off this server: {watch.foreign_requests}"
