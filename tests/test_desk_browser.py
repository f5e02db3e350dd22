"""An editor at the desk in real headless Chromium: log in, import the feed, pick three
articles, move one up, see that order in the preview at both widths, approve, send a
test to themselves. Screenshots of the desk and the preview go to the screenshots folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from newsletter.app import Desk
from newsletter.editors import add_editor
from newsletter.settings import Settings

from .browser import LiveServer
from .conftest import NOW, ROOT, SMTPServer

EDITOR, PASSWORD = "editor@example.org", "correct horse battery"

pytestmark = pytest.mark.slow  # Chromium in its own process


@pytest.fixture
def live_settings(smtp_settings: Settings) -> Settings:
    return replace(smtp_settings, feed_url=str(ROOT / "newsletter" / "defaults" / "demo_feed.xml"))


def picked_titles(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#picked li[data-article] > strong").all_inner_texts()]


def in_order(text: str, titles: list[str]) -> bool:
    places = [text.find(t) for t in titles]
    return -1 not in places and places == sorted(places)


def test_an_editor_puts_the_issue_together_previews_approves_and_tests_it(
    desk: Desk,
    live_server: LiveServer,
    page: Any,
    smtp_server: SMTPServer,
    screenshots: Path,
) -> None:
    with desk.engine.begin() as conn:
        add_editor(conn, EDITOR, PASSWORD, NOW)
    page.goto(f"{live_server.url}/desk/")
    assert "/desk/login" in page.url  # the desk needs a login
    page.get_by_label("Email").fill(EDITOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.get_by_role("button", name="Start the issue for").first.click()  # the next send day
    page.get_by_role("button", name="Import the feed", exact=True).click()
    assert page.get_by_role("status").first.inner_text().startswith("feed: 16 added")

    adds = page.locator("#pool button[aria-label^='Add: ']")
    titles = []
    for n in range(3):
        label = adds.first.get_attribute("aria-label")
        assert label is not None
        titles.append(label.removeprefix("Add: "))
        adds.first.click()  # in place: the list grows without a reload
        expect(page.locator("#picked li[data-article]")).to_have_count(n + 1)
    assert picked_titles(page) == titles
    page.get_by_role("button", name=f"Move up: {titles[2]}").click()
    expected = [titles[0], titles[2], titles[1]]
    expect(page.locator("#picked li[data-article] > strong").nth(1)).to_have_text(titles[2])
    assert picked_titles(page) == expected

    page.get_by_label("Subject").fill("The week in three stories")
    page.get_by_label("Preheader").fill("Picked by the editors")
    page.get_by_role("button", name="Save", exact=True).first.click()
    expect(page.locator("#save-state")).to_have_attribute("data-kind", "saved")
    page.wait_for_load_state("networkidle")  # the previews redrawn with the new text
    for name, width in (("desktop", 640), ("phone", 375)):
        shown = page.frame_locator(f"iframe[name={name}]").locator("body").inner_text()
        assert in_order(shown, expected), name
        assert page.locator(f"iframe[name={name}]").get_attribute("width") == str(width)
    page.screenshot(path=str(screenshots / "desk-issue.png"), full_page=True)
    page.locator("iframe[name=desktop]").screenshot(path=str(screenshots / "preview-desktop.png"))
    page.locator("iframe[name=phone]").screenshot(path=str(screenshots / "preview-phone.png"))

    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("approved")  # after its reload
    page.get_by_role("button", name="Send me a test").click()
    assert f"test sent to {EDITOR}" in page.get_by_role("status").first.inner_text()
    [test] = smtp_server.handler.received
    assert test.recipients == [EDITOR]
    assert in_order(test.data.decode("utf-8", "replace"), [expected[0][:20]])
