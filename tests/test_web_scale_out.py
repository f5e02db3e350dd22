"""Two web processes behind one proxy behave as one: sessions are signed cookies and the
limits live in the database, so two `create_app` instances on one database (a SQLite
file, a PostgreSQL schema) agree on logins, CSRF tokens, sign-up and login limits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.app import Desk
from newsletter.editors import add_editor
from newsletter.settings import Settings
from newsletter.web import create_app

from .conftest import NOW, SMTPServer
from .test_desk import EDITOR, PASSWORD, csrf_of, logged_in, post
from .test_signup import GOOD, browser


@pytest.fixture
def shared(desk: Desk, smtp_server: SMTPServer) -> Settings:
    """Settings on one database both apps use (SQLite or PostgreSQL, as the suite runs),
    initialised, with an editor."""
    with desk.engine.begin() as conn:
        add_editor(conn, EDITOR, PASSWORD, NOW)
    return replace(desk.settings, smtp_url=smtp_server.url, signups_per_hour=4)


@pytest.fixture
def apps(shared: Settings) -> Iterator[tuple[Flask, Flask]]:
    pair = (create(shared), create(shared))
    yield pair
    for app in pair:
        app.config["DESK"].engine.dispose()


def create(settings: Settings) -> Flask:
    return create_app(settings)


def test_a_login_on_one_app_holds_on_the_other_with_its_csrf_token(
    apps: tuple[Flask, Flask],
) -> None:
    a, b = apps[0].test_client(), apps[1].test_client()
    token = logged_in(a)
    cookie = a.get_cookie("session")
    assert cookie is not None
    b.set_cookie("session", cookie.value)
    assert b.get("/desk/issues").status_code == 200
    made = post(b, "/desk/issues", token)  # the form came from A, the POST goes to B
    assert made.status_code == 303, made.get_data(as_text=True)
    assert a.get(made.headers["Location"]).status_code == 200
    assert post(b, "/desk/issues", "a token of another session").status_code == 400


def sign_ups(clients: list[FlaskClient], times: int) -> list[int]:
    """Sign-ups of new addresses from one network, taking the clients in turn."""
    codes = []
    for n in range(times):
        data = {**GOOD, "email": f"reader{n}@example.org"}
        codes.append(
            clients[n % len(clients)].post("/subscribe", data=data, **browser()).status_code
        )
    return codes


def test_the_sign_up_limit_counts_across_both_apps(apps: tuple[Flask, Flask]) -> None:
    alternating = sign_ups([apps[0].test_client(), apps[1].test_client()], 6)
    assert alternating == [200, 200, 200, 200, 429, 429]  # signups_per_hour=4, as one app


def test_the_sign_up_limit_of_one_app_alone_is_the_same(shared: Settings) -> None:
    app = create(shared)
    assert sign_ups([app.test_client()], 6) == [200, 200, 200, 200, 429, 429]
    app.config["DESK"].engine.dispose()


def test_failed_logins_count_across_both_apps(apps: tuple[Flask, Flask]) -> None:
    clients = [apps[0].test_client(), apps[1].test_client()]
    tokens = [csrf_of(c) for c in clients]
    for n in range(5):
        wrong = post(clients[n % 2], "/desk/login", tokens[n % 2], email=EDITOR, password="no!")
        assert wrong.status_code == 401
    for client, token in zip(clients, tokens, strict=True):
        late = post(client, "/desk/login", token, email=EDITOR, password=PASSWORD)
        assert late.status_code == 429
        assert "too many failed logins" in late.get_data(as_text=True)
