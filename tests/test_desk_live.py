"""The desk as an editor lives in it, in real headless Chromium: text typed in every field
survives adding, removing, moving and a reload; two tabs on one issue, the second save
refused and shown; undo; the week at a glance against the database; a send to a local
SMTP server followed live; the desk's error pages; the desk at 1280, 1920 and 900 px.
Screenshots go to the screenshots folder."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.app import Desk
from newsletter.curation.issues import get_issue
from newsletter.editors import add_editor
from newsletter.settings import Settings
from newsletter.store import tables as db

from .browser import LiveServer
from .conftest import ROOT, RecordingHandler, SMTPServer, seed_readers, smtp_serving

EDITOR, PASSWORD = "editor@example.org", "correct horse battery"
MONDAY = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
READERS = tuple((f"reader{n:02d}@example.org", f"Reader {n}") for n in range(20))

pytestmark = pytest.mark.slow  # Chromium in its own process


@dataclass
class GatedHandler(RecordingHandler):
    """Takes `after` messages, then holds every DATA until the test opens the gate: the
    send stands still where the test can look at it."""

    after: int = 1_000_000
    gate: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if len(self.received) >= self.after:
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 60)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def gated() -> Iterator[SMTPServer]:
    handler = GatedHandler()
    with smtp_serving(handler) as server:
        try:
            yield server
        finally:
            handler.gate.set()  # a send still held lets go before the server stops


@pytest.fixture
def live_settings(settings: Settings, gated: SMTPServer) -> Settings:
    return replace(settings, smtp_url=gated.url, clock=MONDAY,
                   feed_url=str(ROOT / "newsletter" / "defaults" / "demo_feed.xml"))  # fmt: skip


@pytest.fixture
def editor(desk: Desk) -> None:
    with desk.engine.begin() as conn:
        add_editor(conn, EDITOR, PASSWORD, MONDAY)


def log_in(page: Any, url: str) -> None:
    page.goto(f"{url}/desk/")
    page.get_by_label("Email").fill(EDITOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def start_with_feed(page: Any) -> None:
    page.get_by_role("button", name="Start the issue for Friday 27 November 2026").click()
    page.get_by_role("button", name="Import the feed", exact=True).click()
    assert page.get_by_role("status").first.inner_text().startswith("feed: 16 added")


def picked(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#picked li[data-article] > strong").all_inner_texts()]


def saved(page: Any) -> None:
    page.wait_for_function(
        "() => document.getElementById('save-state').dataset.kind === 'saved'", timeout=10_000
    )


def add(page: Any, n: int) -> list[str]:
    """Add the first n articles of the pool, each in place; their titles."""
    titles = []
    for k in range(n):
        button = page.locator("#pool button[aria-label^='Add: ']").first
        titles.append((button.get_attribute("aria-label") or "").removeprefix("Add: "))
        button.click()
        page.wait_for_function(
            f"() => document.querySelectorAll('#picked li[data-article]').length === {k + 1}"
        )
    return titles


def test_nothing_typed_is_lost_through_adds_removes_moves_and_a_reload(
    desk: Desk, editor: None, live_server: LiveServer, page: Any, screenshots: Path
) -> None:
    log_in(page, live_server.url)
    start_with_feed(page)
    page.evaluate("window.stayed = true")  # gone if the page reloads
    page.get_by_label("Subject").fill("Eight stories, typed and never lost")
    page.get_by_label("Preheader").fill("The preheader, typed then straight to Add")
    page.get_by_label("Editor's note").fill("A note the editor typed.")
    page.locator("#pool").scroll_into_view_if_needed()
    low = page.evaluate("window.scrollY")
    titles = add(page, 8)  # right after typing, before any pause: saved first
    assert picked(page) == titles
    assert page.evaluate("window.stayed") is True, "the page reloaded"
    assert page.evaluate("window.scrollY") >= low * 0.5 > 0, "the page jumped to the top"
    second = page.locator("#picked li[data-article]").nth(1)
    second.locator("summary").click()
    second.get_by_label("Title (empty: the article's)").fill("Our own title for the second")
    second.get_by_label("Summary (empty: the article's)").fill("Our own summary.")
    page.get_by_label("Group the articles by section").check()
    saved(page)
    page.get_by_role("button", name="Remove: Our own title for the second").click()
    page.locator("#notice").get_by_text("Removed “Our own title for the second”").wait_for()
    assert len(picked(page)) == 7
    page.locator("#notice").get_by_role("button", name="Undo").click()
    page.wait_for_function(
        "() => document.querySelectorAll('#picked li[data-article]').length === 8"
    )
    assert picked(page)[1] == "Our own title for the second"
    page.get_by_role("button", name=f"Move up: {titles[3]}").click()
    page.wait_for_function(
        f"() => document.querySelector('#picked li:nth-child(3) strong').textContent === {titles[3]!r}"
    )
    assert page.evaluate("window.stayed") is True
    page.screenshot(path=str(screenshots / "desk-live-editing.png"), full_page=True)
    page.reload()
    assert page.get_by_label("Subject").input_value() == "Eight stories, typed and never lost"
    assert (
        page.get_by_label("Preheader").input_value() == "The preheader, typed then straight to Add"
    )
    assert page.get_by_label("Editor's note").input_value() == "A note the editor typed."
    assert page.get_by_label("Group the articles by section").is_checked()
    assert page.locator("#picked li[data-article]").nth(1).get_by_label(
        "Summary (empty: the article's)").input_value() == "Our own summary."  # fmt: skip
    assert picked(page) == [titles[0], "Our own title for the second", titles[3], titles[2],
                            *titles[4:]]  # fmt: skip
    with desk.engine.connect() as conn:
        issue = get_issue(conn, 1)
    assert issue.subject == "Eight stories, typed and never lost" and len(issue.items) == 8


def test_two_tabs_on_one_issue_the_second_save_is_refused_and_shown(
    desk: Desk, editor: None, live_server: LiveServer, page: Any, screenshots: Path
) -> None:
    log_in(page, live_server.url)
    start_with_feed(page)
    add(page, 2)
    other = page.context.new_page()
    other.goto(page.url)
    page.get_by_label("Subject").fill("Saved by the first tab")
    saved(page)
    other.get_by_label("Editor's note").fill("Typed in the second tab")
    other.wait_for_function(
        "() => document.getElementById('save-state').dataset.kind === 'conflict'", timeout=10_000
    )
    state = other.locator("#save-state").inner_text()
    assert "Not saved" in state and "changed in another tab or by another editor" in state
    assert other.get_by_label("Editor's note").input_value() == "Typed in the second tab"
    other.screenshot(path=str(screenshots / "desk-two-tabs-refused.png"))
    with desk.engine.connect() as conn:
        issue = get_issue(conn, 1)
    assert (issue.subject, issue.note) == ("Saved by the first tab", "")
    other.get_by_role("button", name="Reload the issue").click()
    assert other.get_by_label("Subject").input_value() == "Saved by the first tab"


def test_the_week_at_a_glance_and_a_send_followed_live(
    desk: Desk, editor: None, live_server: LiveServer, page: Any, gated: SMTPServer,
    screenshots: Path,
) -> None:  # fmt: skip
    seed_readers(desk.engine, READERS)
    handler = gated.handler
    assert isinstance(handler, GatedHandler)
    handler.refuse["reader07@example.org"] = "550 5.1.1 <reader07@example.org>: no such user"
    log_in(page, live_server.url)
    start_with_feed(page)
    add(page, 3)
    page.get_by_label("Subject").fill("Sent now, watched live")
    page.get_by_label("Preheader").fill("Three stories for twenty readers this week")
    saved(page)
    week = page.locator("#week")
    zone = str(live_server.settings.timezone)
    assert f"Friday 27 November 2026, {live_server.settings.send_at.at:%H:%M} {zone}" in (
        week.inner_text()
    )
    assert "in 3 days" in week.inner_text()
    assert "will go to 20 readers" in week.inner_text()
    assert "no scheduler has run" in week.inner_text()
    page.get_by_role("button", name="Approve", exact=True).click()
    page.get_by_text("approved: it goes out then").wait_for()
    handler.after = 5
    page.get_by_label("Send now to 20 readers: type 20").fill("20")
    page.get_by_role("button", name="Send now").click()
    page.wait_for_url("**/status")
    page.evaluate("window.stayed = true")
    page.wait_for_function(
        "() => document.getElementById('progress-words').textContent.includes('5 of 20 readers')",
        timeout=15_000,
    )
    live = page.locator("#send-live").inner_text()
    assert page.locator("#progress").get_attribute("max") == "20"
    assert "being sent" in live and "still to go" in live and "in the last minute" in live
    assert "claimed" not in live and "pending" not in live
    page.screenshot(path=str(screenshots / "desk-send-live.png"), full_page=True)
    handler.gate.set()
    page.wait_for_function(
        "() => document.getElementById('send-state').textContent === 'sent'", timeout=30_000
    )
    assert page.evaluate("window.stayed") is True  # redrawn in place, not reloaded
    done = page.locator("#send-live").inner_text()
    assert "19 of 20 readers reached" in done and "1 not (failed or skipped)" in done
    assert "reader07@example.org (userunknown)" in done  # the first failures, with their reason
    with desk.engine.connect() as conn:
        counts = dict(conn.execute(sa.select(db.deliveries.c.status, sa.func.count())
                                   .group_by(db.deliveries.c.status)).all())  # fmt: skip
    assert counts == {"sent": 19, "failed": 1}
    page.screenshot(path=str(screenshots / "desk-send-done.png"), full_page=True)


def test_the_desks_error_pages(
    desk: Desk, editor: None, live_server: LiveServer, page: Any, screenshots: Path
) -> None:
    with desk.engine.begin() as conn:
        add_editor(conn, "junior@example.org", "another long passphrase", MONDAY)
    page.goto(f"{live_server.url}/desk/")
    page.get_by_label("Email").fill("junior@example.org")
    page.get_by_label("Password").fill("another long passphrase")
    page.get_by_role("button", name="Log in").click()
    answer = page.goto(f"{live_server.url}/desk/issues/999")
    assert answer is not None and answer.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    assert "No issue 999" in page.locator("main").inner_text()
    page.screenshot(path=str(screenshots / "desk-error-404.png"))
    answer = page.goto(f"{live_server.url}/desk/readers/export.csv")
    assert answer is not None and answer.status == 403
    assert page.locator("h1").inner_text() == "Not for your account"
    page.screenshot(path=str(screenshots / "desk-error-403.png"))
    for text in (page.content(),):
        assert "Forbidden" not in text and "Error:" not in text


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (1920, 1080), (900, 700)])
def test_the_desk_fits_each_window_without_sideways_scrolling(
    desk: Desk, editor: None, live_server: LiveServer, page: Any, screenshots: Path,
    width: int, height: int,
) -> None:  # fmt: skip
    seed_readers(desk.engine, READERS)
    page.set_viewport_size({"width": width, "height": height})
    log_in(page, live_server.url)
    start_with_feed(page)
    add(page, 8)
    page.get_by_label("Subject").fill("Eight stories at the desk")
    page.get_by_label("Preheader").fill("How the desk looks on this screen, with eight picks")
    saved(page)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{overflow} px of sideways scrolling at {width} px"
    panel = page.locator("#preview-panel").bounding_box()
    for name in ("desktop", "phone"):
        frame = page.locator(f"iframe[name={name}]").bounding_box()
        assert frame["x"] + frame["width"] <= panel["x"] + panel["width"] + 1, name
    groups = page.locator("#preflight > li")
    assert groups.count() <= 6, groups.all_inner_texts()  # grouped by kind, not a line each
    page.screenshot(path=str(screenshots / f"desk-{width}.png"), full_page=True)
