"""Set-up that holds on any install: one secret key kept for every process of a desk, an
empty audience refused, the next week's issue after the demo, the front page, and the
repository's own subscribers/ sample."""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from email.policy import default
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.app import Desk
from newsletter.errors import ConfigError
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.web import create_app

from .conftest import FEEDS, NOW, ROOT

pytestmark = pytest.mark.slow  # every test here starts processes


def newsletter(
    cwd: Path, *args: str, database_url: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    """The command in its own process, as a second shell would run it: no secret key set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env |= {
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_BASE_URL": "https://news.example.org",
    }
    env |= {f"NEWSLETTER_{k.upper()}": v for k, v in extra.items()}
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def ok(cwd: Path, *args: str, database_url: str, **extra: str) -> str:
    result = newsletter(cwd, *args, database_url=database_url, **extra)
    assert result.returncode == 0, result.stderr
    return result.stdout


def unsubscribe_links(outbox: Path) -> dict[str, str]:
    """Each reader's one-click unsubscribe URL, from the messages in the outbox."""
    links = {}
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=default)
        header = str(message["List-Unsubscribe"])
        links[str(message["To"])] = re.findall(r"<(https://[^>]+)>", header)[0]
    return links


def path_of(url: str) -> str:
    return url.removeprefix("https://news.example.org")


def status_of(database_url: str, address: str) -> str:
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            s = db.subscribers
            return str(conn.execute(sa.select(s.c.status).where(s.c.email == address)).scalar())
    finally:
        engine.dispose()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    return site


def kept_settings(site: Path, database_url: str) -> Settings:
    """The web app's settings with no key given: it must find the one the desk keeps."""
    return Settings(
        database_url=database_url,
        templates=site / "templates",
        privacy_dir=site / "privacy",
        outbox=site / "outbox",
        base_url="https://news.example.org",
    )


# One secret, kept --------------------------------------------------------------------------


def test_processes_started_without_the_variable_sign_and_verify_the_same_links(
    site: Path, database_url: str
) -> None:
    first = ok(site, "init", database_url=database_url)
    assert "made the secret key that signs readers' links" in first
    again = ok(site, "init", database_url=database_url)
    assert "made the secret key" not in again  # made once
    ok(site, "demo", database_url=database_url)  # signs the issue's links in its process
    links = unsubscribe_links(site / "outbox")
    assert len(links) == 3
    # another process (this one) with no key configured verifies them
    client = create_app(kept_settings(site, database_url)).test_client()
    tom = next(url for to, url in links.items() if "tom.baker" in to)
    shown = client.get(path_of(tom))
    assert shown.status_code == 200 and b"This link does not work" not in shown.data
    done = client.post(path_of(tom), data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and done.data == b"Unsubscribed.\n"
    assert status_of(database_url, "tom.baker@example.org") == "unsubscribed"
    # and a third process signs with the same key as the first
    ok(site, "subscribers", "add", "lena@example.org", "--consent", database_url=database_url)
    newest = max((site / "outbox").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    confirmation = email.message_from_bytes(newest.read_bytes(), policy=default)
    text = confirmation.get_body(("plain",))
    assert text is not None
    link = re.search(r"https://news\.example\.org(/confirm/[\w.-]+)", text.get_content())
    assert link is not None
    assert b"Confirm your subscription" in client.get(link.group(1)).data


def test_a_rotated_key_still_verifies_last_weeks_unsubscribe_link(
    site: Path, database_url: str
) -> None:
    ok(site, "demo", database_url=database_url, clock="2026-11-23T10:00:00+00:00")
    links = unsubscribe_links(site / "outbox")
    rotated = ok(site, "secret", "rotate", "--keep", "30d", database_url=database_url,
                 clock="2026-11-30T10:00:00+00:00")  # fmt: skip
    assert "links signed before work until 2026-12-30" in rotated
    settings = kept_settings(site, database_url)
    app = create_app(settings)
    desk: Desk = app.config["DESK"]
    old_key, *_ = desk.settings.older_secret_keys
    assert desk.settings.secret_key not in (None, old_key)  # a new key signs from now on
    anna = next(url for to, url in links.items() if "anna" in to)
    assert b"This link does not work" not in app.test_client().get(path_of(anna)).data
    assert app.test_client().post(path_of(anna)).status_code == 200
    assert status_of(database_url, "anna.petrova@example.org") == "unsubscribed"
    # once the kept time is over, the old key verifies nothing
    later = create_app(replace(settings, clock=NOW + timedelta(days=60)))
    tom = next(url for to, url in links.items() if "tom.baker" in to)
    gone = later.test_client().get(path_of(tom))
    assert gone.status_code == 400 and b"This link does not work" in gone.data


def test_the_variable_overrides_the_kept_key_and_rotation_refuses_it(
    site: Path, database_url: str
) -> None:
    ok(site, "init", database_url=database_url)
    refused = newsletter(site, "secret", "rotate", database_url=database_url,
                         secret_key="a-key-given-in-the-environment-0123456789")  # fmt: skip
    assert refused.returncode == 2 and "overrides the kept key" in refused.stderr
    given = create_app(
        replace(
            kept_settings(site, database_url),
            secret_key="given-in-the-environment-0123456789-abcdef",
        )
    )
    assert given.config["DESK"].settings.secret_key == "given-in-the-environment-0123456789-abcdef"


def test_no_key_and_no_database_refuses_to_start_and_creates_nothing(tmp_path: Path) -> None:
    database = tmp_path / "subscribers" / "newsletter.db"
    settings = Settings(database_url=f"sqlite:///{database}")
    with pytest.raises(ConfigError, match=r"NEWSLETTER_SECRET_KEY: is not set.*newsletter init"):
        create_app(settings)
    assert not database.exists()
    result = newsletter(tmp_path, "send", "1", database_url=f"sqlite:///{database}")
    assert result.returncode != 0 and "newsletter init" in result.stderr + result.stdout
    served = subprocess.run(
        [sys.executable, "-c", "from newsletter.web import wsgi; wsgi()"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        | {"NEWSLETTER_DATABASE_URL": f"sqlite:///{database}"},
    )  # fmt: skip
    assert served.returncode == 1 and "NEWSLETTER_SECRET_KEY: is not set" in served.stderr
    assert not database.exists()


# An empty audience -------------------------------------------------------------------------


def test_a_send_with_no_reader_is_refused_and_the_issue_stays_approved(
    site: Path, database_url: str
) -> None:
    ok(site, "init", database_url=database_url)
    ok(site, "articles", "import", str(FEEDS / "liga-ru-2021.xml"), database_url=database_url)
    issue = ok(site, "issue", "new", database_url=database_url).strip()
    ok(site, "issue", "pick", issue, "1", "2", database_url=database_url)
    ok(site, "issue", "set", issue, "--subject", "The week", database_url=database_url)
    ok(site, "issue", "approve", issue, database_url=database_url)
    refused = newsletter(site, "send", issue, database_url=database_url)
    assert refused.returncode == 4
    assert f"issue {issue} has no active reader to go to" in refused.stderr
    assert "stays approved" in refused.stderr and "--allow-empty" in refused.stderr
    assert "approved" in ok(site, "issue", "list", database_url=database_url)
    started = newsletter(site, "send", issue, "--start-only", database_url=database_url)
    assert started.returncode == 4 and "no active reader" in started.stderr
    # a reader who joins later gets it
    ok(site, "subscribers", "add", "late@example.org", "--consent", database_url=database_url)
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(db.subscribers.update().values(status="active"))
    engine.dispose()
    sent = ok(site, "send", issue, database_url=database_url)
    assert f"issue {issue}: sent" in sent and "sent now 1" in sent


def test_allow_empty_sends_to_nobody_when_asked(site: Path, database_url: str) -> None:
    ok(site, "init", database_url=database_url)
    ok(site, "articles", "import", str(FEEDS / "liga-ru-2021.xml"), database_url=database_url)
    ok(site, "issue", "new", database_url=database_url)
    ok(site, "issue", "pick", "1", "1", database_url=database_url)
    ok(site, "issue", "set", "1", "--subject", "The week", database_url=database_url)
    ok(site, "issue", "approve", "1", database_url=database_url)
    sent = ok(site, "send", "1", "--allow-empty", database_url=database_url)
    assert "issue 1: sent" in sent and "audience 0" in sent


# The next week, the front page ------------------------------------------------------------


def test_issue_new_after_the_demo_makes_the_next_free_send_days_issue(
    site: Path, database_url: str
) -> None:
    monday = "2026-11-23T10:00:00+00:00"
    assert "issue 1 for 2026-11-27" in ok(site, "demo", database_url=database_url, clock=monday)
    assert ok(site, "issue", "new", database_url=database_url, clock=monday) == "2\n"
    assert ok(site, "issue", "new", "--json", database_url=database_url, clock=monday).count(
        '"send_date": "2026-12-11"'
    )
    taken = newsletter(site, "issue", "new", "--date", "2026-11-25", database_url=database_url)
    assert taken.returncode == 4 and "issue 1 is already the issue for 2026-11-27" in taken.stderr


def test_the_front_page_sends_a_reader_to_the_sign_up_and_an_editor_to_the_desk(
    site: Path, database_url: str
) -> None:
    ok(site, "init", database_url=database_url)
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    from newsletter.editors import add_editor

    with engine.begin() as conn:
        add_editor(conn, "editor@example.org", "a long enough password", NOW)
    engine.dispose()
    client = create_app(kept_settings(site, database_url)).test_client()
    reader = client.get("/")
    assert reader.status_code == 302 and reader.headers["Location"] == "/subscribe"
    assert client.head("/").status_code == 302
    login = client.get("/desk/login")
    token = re.search(rb'name="csrf" value="([^"]+)"', login.data)
    assert token is not None
    signed = client.post("/desk/login", data={"email": "editor@example.org",
                         "password": "a long enough password", "csrf": token.group(1).decode()})  # fmt: skip
    assert signed.status_code == 303
    editor = client.get("/")
    assert editor.status_code == 302 and editor.headers["Location"] == "/desk/"


# The repository's subscribers/ -------------------------------------------------------------


def test_the_sample_readers_file_imports_as_it_is(site: Path, database_url: str) -> None:
    folder = ROOT / "subscribers"
    readme = (folder / "README.md").read_text()
    for column in ("email", "name", "consented_at", "source", "ip", "policy_version", "status"):
        assert f"`{column}`" in readme, column
    ok(site, "init", database_url=database_url)
    report = ok(
        site, "subscribers", "import", str(folder / "readers.csv"), database_url=database_url
    )
    rows = sum(1 for line in (folder / "readers.csv").read_text().splitlines()[1:] if line)
    assert f"{rows} rows: " in report and "0 refused" in report and "0 pending" in report
