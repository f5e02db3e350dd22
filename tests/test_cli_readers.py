"""Readers from the command line: sign-up with opt-in mail, withdrawal, export, erasure, policy."""

from __future__ import annotations

import email
import json
import re
from email.policy import default
from pathlib import Path

from .conftest import ROOT, SECRET
from .test_cli import as_json, ok, run, site  # noqa: F401 - site is a fixture

ENV = {"NEWSLETTER_SECRET_KEY": SECRET, "NEWSLETTER_BASE_URL": "https://news.example.org"}


def outbox(folder: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=default)  # type: ignore[misc]
        for p in sorted(folder.glob("*.eml"))
    ]


def test_add_mails_a_confirmation_and_says_the_same_for_any_address(site: Path) -> None:  # noqa: F811
    ok("init")
    first = ok("subscribers", "add", "Anna@Example.org", "--name", "Анна", "--consent", env=ENV)
    second = ok("subscribers", "add", "anna@example.org", "--consent", env=ENV)
    assert first.stdout == second.stdout
    [message, again] = outbox(site / "outbox")
    assert message["To"].addresses[0].addr_spec == "anna@example.org"
    assert message["Subject"] == "Please confirm your subscription to The Weekly"
    assert message["List-Unsubscribe"] is None  # not on the list yet
    text = message.get_body(("plain",)).get_content()
    assert re.search(r"https://news\.example\.org/confirm/\S+", text)
    # the name greets her from the welcome mail on, once the address has confirmed it
    assert text.startswith("Dear reader,") and "Анна" not in text and again["To"] is not None
    listed = as_json("subscribers", "list", "--status", "pending")
    assert listed["counts"] == {"pending": 1}


def test_add_without_consent_is_refused_and_stores_nothing(site: Path) -> None:  # noqa: F811
    ok("init")
    result = run("subscribers", "add", "anna@example.org", env=ENV)
    assert result.exit_code == 2 and "consent: tick the box" in result.stderr
    assert as_json("subscribers", "list")["counts"] == {}


def test_unsubscribe_export_and_forget(site: Path) -> None:  # noqa: F811
    ok("init")
    csv_file = site / "readers.csv"
    csv_file.write_text(
        "email,name,consented_at,source,ip,policy_version\n"
        "tom@example.org,Tom,2026-01-05T10:00:00Z,https://example.org/form,192.0.2.4,2026-11-01\n"
    )
    assert as_json("subscribers", "import", str(csv_file))["added"] == 1
    assert as_json("unsubscribe", "tom@example.org")["changed"] is True
    assert as_json("unsubscribe", "tom@example.org")["changed"] is False
    exported = json.loads(ok("subscribers", "export", "tom@example.org", "--json").stdout)
    kinds = [e["kind"] for e in exported["consent_events"]]
    assert kinds == ["imported", "withdrawn"]
    assert exported["consent_events"][0]["ip"] == "192.0.2.4"
    whole = ok("subscribers", "export", "--csv").stdout
    assert "tom@example.org,Tom,unsubscribed,2026-01-05T10:00:00+00:00" in whole
    ok("subscribers", "forget", "tom@example.org", "--yes")
    assert "tom@example.org" not in ok("subscribers", "export", "--csv").stdout
    again = as_json("subscribers", "import", str(csv_file))
    assert (again["added"], again["suppressed"]) == (0, 1)
    missing = run("subscribers", "export", "tom@example.org")
    assert missing.exit_code == 3 and "no subscriber tom@example.org" in missing.stderr


def test_policy_publish_with_reconsent_mails_a_notice(site: Path) -> None:  # noqa: F811
    ok("init")
    csv_file = site / "readers.csv"
    csv_file.write_text(
        "email;name;consented_at;source;ip;policy_version\n"
        "ann@example.org;Ann;2026-01-05T10:00:00Z;form;;2026-11-01\n"
    )
    ok("subscribers", "import", str(csv_file))
    new_text = site / "2027-01-01.md"
    new_text.write_text((ROOT / "privacy" / "2026-11-01.md").read_text() + "\nNew: a paragraph.\n")
    (site / "wording.txt").write_text("I agree to the new policy.")
    published = as_json("policy", "publish", str(new_text), "--version", "2027-01-01",
                        "--reconsent", env=ENV)  # fmt: skip
    assert published["reconsent_requested"] == 1
    assert as_json("subscribers", "list")["counts"] == {"reconsent": 1}
    [notice] = outbox(site / "outbox")
    text = notice.get_body(("plain",)).get_content()
    assert "https://news.example.org/reconsent/" in text and "I agree to the new policy." in text
    edited = run("policy", "publish", str(new_text), "--version", "2026-11-01")
    assert edited.exit_code == 4 and "already published with other text" in edited.stderr
