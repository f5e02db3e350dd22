"""End to end in headless Chromium: a reader signs up with the keyboard, the confirmation
mail reaches a real SMTP server on loopback, the link in it confirms; the unsubscribe
page; the sign-up page at desktop and phone widths (screenshots for people to look at).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.app import Desk
from newsletter.readers.subscribers import get_subscriber
from newsletter.readers.tokens import reader_token

from .browser import DESKTOP, PHONE, LiveServer
from .conftest import SECRET, SMTPServer, seed_readers, wait_for_mail
from .test_public_pages import parse, snapshot

pytestmark = pytest.mark.slow  # Chromium in its own process


def status_of(engine: sa.Engine, ref: str | int) -> str:
    with engine.connect() as conn:
        return get_subscriber(conn, ref).status


def focused_id(page: Any) -> str:
    return str(page.evaluate("document.activeElement.id"))


def look_at_the_mail(page: Any, data: bytes, button: str, picture: Path) -> None:
    """The mail's HTML as a mail client's browser shows it: its one button is there, white
    on the site's red, and the picture is kept."""
    html = parse(data).get_body(("html",))
    assert html is not None
    viewer = page.context.new_page()
    viewer.set_content(html.get_content())
    link = viewer.get_by_role("link", name=button)
    assert link.is_visible()
    colours = link.evaluate("a => [getComputedStyle(a).color, getComputedStyle(a).backgroundColor]")
    assert colours == ["rgb(255, 255, 255)", "rgb(163, 22, 28)"]
    viewer.screenshot(path=str(picture), full_page=True)
    viewer.close()


def test_a_reader_signs_up_with_the_keyboard_and_confirms_from_the_mail(
    desk: Desk, live_server: LiveServer, smtp_server: SMTPServer, page: Any, screenshots: Path
) -> None:
    page.goto(f"{live_server.url}/subscribe")
    assert page.locator("html").get_attribute("lang") == "en"
    box = page.get_by_role("checkbox")
    assert not box.is_checked()

    page.get_by_label("Email address").fill("lena@example.org")
    page.get_by_label("Name").fill("Лена Смирнова")
    page.keyboard.press("Tab")
    assert focused_id(page) == "newsletter-consent"
    page.keyboard.press("Space")
    assert box.is_checked()
    page.get_by_role("button", name="Subscribe").click()

    page.get_by_role("heading", name="Check your inbox").wait_for()
    assert status_of(desk.engine, "lena@example.org") == "pending"
    wait_for_mail(smtp_server, 1)  # sent once the page has answered
    (received,) = smtp_server.handler.received
    assert received.recipients == ["lena@example.org"]
    text = parse(received.data).get_body(("plain",))
    assert text is not None
    (link,) = re.findall(rf"{re.escape(live_server.url)}/confirm/\S+", text.get_content())
    look_at_the_mail(
        page, received.data, "Yes, send me the newsletter", screenshots / "mail-confirm.png"
    )

    page.goto(link)
    assert status_of(desk.engine, "lena@example.org") == "pending"  # opening is not confirming
    page.get_by_role("button", name="Yes, send me the newsletter").click()
    page.get_by_role("heading", name="You are subscribed").wait_for()
    assert status_of(desk.engine, "lena@example.org") == "active"
    wait_for_mail(smtp_server, 2)  # and the welcome, sent by the notices' thread
    assert len(smtp_server.handler.received) == 2
    welcome = smtp_server.handler.received[1].data
    look_at_the_mail(page, welcome, "Unsubscribe", screenshots / "mail-welcome.png")


def test_a_sign_up_without_the_tick_is_stopped_in_the_browser_and_stores_nothing(
    desk: Desk, live_server: LiveServer, smtp_server: SMTPServer, page: Any
) -> None:
    before = snapshot(desk.engine)
    page.goto(f"{live_server.url}/subscribe")
    page.get_by_label("Email address").fill("lena@example.org")
    page.get_by_role("button", name="Subscribe").click()
    assert page.url == f"{live_server.url}/subscribe"
    assert page.get_by_role("checkbox").evaluate("box => box.validity.valueMissing")
    assert snapshot(desk.engine) == before and smtp_server.handler.received == []


def test_the_unsubscribe_page_changes_nothing_until_the_button(
    desk: Desk, live_server: LiveServer, page: Any
) -> None:
    _anna, tom, _noname = seed_readers(desk.engine)
    before = snapshot(desk.engine)
    page.goto(f"{live_server.url}/unsubscribe/{reader_token(SECRET, tom)}")
    button = page.get_by_role("button", name="Unsubscribe")
    assert button.is_visible()
    assert snapshot(desk.engine) == before and status_of(desk.engine, tom) == "active"

    button.click()
    page.get_by_role("heading", name="You are unsubscribed").wait_for()
    assert status_of(desk.engine, tom) == "unsubscribed"


@pytest.mark.parametrize(("name", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_the_sign_up_page_fits_the_screen(
    live_server: LiveServer, page: Any, screenshots: Path, name: str, viewport: dict[str, int]
) -> None:
    page.set_viewport_size(viewport)
    page.goto(f"{live_server.url}/subscribe")
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    for control in ("Email address", "Name"):
        box = page.get_by_label(control).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
    page.screenshot(path=str(screenshots / f"signup-{name}.png"), full_page=True)

    page.get_by_label("Email address").fill("lena@example")  # the server's check, not the browser's
    page.get_by_role("checkbox").check()
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("alert").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    page.screenshot(path=str(screenshots / f"signup-error-{name}.png"), full_page=True)
