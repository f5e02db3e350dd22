"""Error answers at the web boundary: pages in the readers' layout, JSON under /api/, and
never a stack trace in a browser."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import lxml.html
import pytest
from flask import Flask, abort
from flask.testing import FlaskClient

from newsletter.app import Desk
from newsletter.errors import ConfigError
from newsletter.settings import Settings
from newsletter.web import create_app, wsgi

from .conftest import SECRET
from .test_public_pages import text_of

SECRET_DETAIL = "db password is hunter2"


@pytest.fixture
def app(desk: Desk, settings: Settings) -> Flask:
    app = create_app(settings)

    def fail() -> str:
        raise RuntimeError(SECRET_DETAIL)

    def refuse() -> str:
        abort(400)

    app.add_url_rule("/boom", view_func=fail)
    app.add_url_rule("/api/boom", "api_boom", view_func=fail)
    app.add_url_rule("/refuse", view_func=refuse)
    return app


def assert_reader_page(response: object, status: int, heading: str) -> None:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response.mimetype == "text/html"  # type: ignore[attr-defined]
    page = lxml.html.document_fromstring(response.get_data(as_text=True))  # type: ignore[attr-defined]
    assert page.get("lang") == "en"
    assert [h.text_content() for h in page.iter("h1")] == [heading]
    assert page.xpath("//footer//a/@href")  # the layout's footer: it sits on the site


@pytest.mark.parametrize(
    ("method", "path", "status", "heading"),
    [
        ("GET", "/no/such/page", 404, "Page not found"),
        ("GET", "/privacy/1999-01-01", 404, "Page not found"),
        ("DELETE", "/subscribe", 405, "That does not work here"),
        ("GET", "/refuse", 400, "That request did not work"),
        ("GET", "/unsubscribe/not-a-token", 400, "This link does not work"),
    ],
)
def test_errors_get_a_page_in_the_readers_layout(
    client: FlaskClient, method: str, path: str, status: int, heading: str
) -> None:
    assert_reader_page(client.open(path, method=method), status, heading)


def test_a_405_names_the_methods_that_work(client: FlaskClient) -> None:
    response = client.delete("/subscribe")
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_an_unexpected_error_is_logged_and_the_reader_sees_a_plain_page(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = client.get("/boom")
    assert_reader_page(response, 500, "Something went wrong")
    html = response.get_data(as_text=True)
    assert SECRET_DETAIL not in html and "Traceback" not in html and "RuntimeError" not in html
    assert "Something went wrong on our side" in text_of(response)
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.exc_info is not None and str(record.exc_info[1]) == SECRET_DETAIL


def test_api_errors_are_json(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    missing = client.get("/api/nothing-here")
    assert (missing.status_code, missing.mimetype) == (404, "application/json")
    assert "error" in missing.json
    with caplog.at_level(logging.ERROR):
        failed = client.get("/api/boom")
    assert (failed.status_code, failed.mimetype) == (500, "application/json")
    assert SECRET_DETAIL not in failed.get_data(as_text=True)


def test_the_app_is_not_made_without_a_secret_key(settings: Settings) -> None:
    """Sessions, sign-up and unsubscribe links all need it: refused when the app is made,
    not on a reader's first click."""
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY"):
        create_app(replace(settings, secret_key=None))


def test_an_error_message_quoting_input_is_escaped(client: FlaskClient) -> None:
    response = client.get("/privacy/<img src=x onerror=alert(1)>")
    assert response.status_code == 404
    page = lxml.html.document_fromstring(response.get_data(as_text=True))
    assert page.xpath("//img | //*[@onerror]") == []
    assert "There is no version <img src=x onerror=alert(1)> of our privacy" in text_of(response)


def test_wsgi_refuses_to_start_without_a_secret_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY", raising=False)
    with pytest.raises(SystemExit, match=r"^newsletter: NEWSLETTER_SECRET_KEY: is not set"):
        wsgi()
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "news.example.org")
    with pytest.raises(SystemExit, match=r"^newsletter: NEWSLETTER_BASE_URL: must be an http"):
        wsgi()
    monkeypatch.delenv("NEWSLETTER_BASE_URL")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    assert isinstance(wsgi(), Flask)
