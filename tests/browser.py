"""Browser fixtures: the app served on loopback in a thread, and Debian's Chromium driven
by Playwright. Browser tests skip where /usr/bin/chromium is missing (apt-get install
chromium; .ci/run does it). Playwright's own browser download is never used: it fails
offline.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from werkzeug.serving import make_server

from newsletter.app import Desk
from newsletter.settings import Settings
from newsletter.web import create_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# SCREENSHOTS=screenshots writes the pictures into the repository instead of a temp folder
SCREENSHOTS = "SCREENSHOTS"


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings


def _starting(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting\n"]


@pytest.fixture
def live_settings(smtp_settings: Settings) -> Settings:
    """The settings the live server runs with; a test module may override this fixture."""
    return smtp_settings


@pytest.fixture
def live_server(desk: Desk, live_settings: Settings) -> Iterator[LiveServer]:
    """The app on 127.0.0.1 and a free port; its links (base_url) point at itself."""
    server = make_server("127.0.0.1", 0, _starting, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    settings = replace(live_settings, base_url=url)
    server.app = create_app(settings)  # the port is known only once bound
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(url, settings)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: install Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies, no cache) at desktop size. A script or style
    our Content-Security-Policy blocked fails the test: the page would not work as tested."""
    context = chromium.new_context(viewport=DESKTOP, locale="en-GB")
    blocked: list[str] = []
    try:
        opened = context.new_page()
        opened.on(
            "console",
            lambda message: (
                blocked.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        yield opened
    finally:
        context.close()
    assert not blocked, f"the Content-Security-Policy blocked: {blocked}"


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ[SCREENSHOTS]) if os.environ.get(SCREENSHOTS) else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder
