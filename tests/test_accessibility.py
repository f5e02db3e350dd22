"""What every readers' page keeps, checked on the HTML: the language is set, every control
has a label, every button has words, and no consent box is ticked before the reader does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import lxml.html
import pytest
from flask.testing import FlaskClient

from newsletter.app import Desk
from newsletter.readers.tokens import reader_token

from .conftest import SECRET, seed_readers
from .test_public_pages import new_signup

LABELLED = "input[not(@type='hidden' or @type='submit' or @type='button')] | textarea | select"

pytestmark = pytest.mark.slow  # Chromium in its own process


def unsubscribe_link(desk: Desk) -> str:
    _anna, tom, _noname = seed_readers(desk.engine)
    return f"/unsubscribe/{reader_token(SECRET, tom)}"


def confirm_link(desk: Desk) -> str:
    signed = datetime.now(UTC)  # clock: the live app checks the link's age on its own clock
    return f"/confirm/{new_signup(desk.engine, 'lena@example.org', signed).token}"


PAGES: dict[str, Callable[[FlaskClient, Desk], Any]] = {
    "sign-up form": lambda client, desk: client.get("/subscribe"),
    "sign-up form with errors": lambda client, desk: client.post("/subscribe", data={"email": "x"}),
    "embed page": lambda client, desk: client.get("/subscribe/embed"),
    "check your inbox": lambda client, desk: client.post(
        "/subscribe", data={"email": "lena@example.org", "consent": "yes"}
    ),
    "privacy policy": lambda client, desk: client.get("/privacy"),
    "unsubscribe": lambda client, desk: client.get(unsubscribe_link(desk)),
    "confirm": lambda client, desk: client.get(confirm_link(desk)),
    "not found": lambda client, desk: client.get("/no/such/page"),
}


def labels_of(page: Any, control: Any) -> list[str]:
    by_id = page.xpath("//label[@for=$id]", id=control.get("id")) if control.get("id") else []
    around = control.xpath("ancestor::label")
    return [" ".join(label.text_content().split()) for label in by_id + around]


@pytest.mark.parametrize("name", list(PAGES))
def test_a_readers_page_is_labelled_and_in_a_language(
    desk: Desk, client: FlaskClient, name: str
) -> None:
    response = PAGES[name](client, desk)
    assert response.mimetype == "text/html"
    page = lxml.html.document_fromstring(response.get_data(as_text=True))
    assert page.get("lang"), "<html lang> tells a screen reader how to pronounce the page"
    assert page.xpath("//meta[@name='viewport']")
    for control in page.xpath(f"//{LABELLED.replace(' | ', ' | //')}"):
        assert [t for t in labels_of(page, control) if t], f"{control.get('name')} has no label"
    for button in page.xpath("//button"):
        assert button.text_content().strip()
    if name != "sign-up form with errors":  # that one keeps the tick the reader gave
        assert page.xpath("//input[@type='checkbox'][@checked]") == []


def test_the_embed_snippet_is_labelled_and_unticked(client: FlaskClient) -> None:
    form = lxml.html.fragment_fromstring(client.get("/subscribe/embed.txt").get_data(as_text=True))
    controls = form.xpath(f".//{LABELLED.replace(' | ', ' | .//')}")
    assert [c.get("name") for c in controls] == ["email", "name", "consent"]
    for control in controls:
        (label,) = form.xpath(".//label[@for=$id]", id=control.get("id"))
        assert label.text_content().strip()
    assert form.xpath(".//input[@checked]") == []
