"""Settings: defaults that work on a laptop, the environment over the file, clear errors."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path

import pytest

from newsletter.errors import ConfigError
from newsletter.settings import Settings, load_settings
from newsletter.settings.table import SETTINGS, settings_table
from newsletter.settings.values import SendAt

from .conftest import ROOT


def test_defaults_work_with_nothing_configured(tmp_path: Path) -> None:
    settings = load_settings({}, tmp_path / "absent.toml")
    assert settings == Settings()
    assert settings.database_url == "sqlite:///subscribers/newsletter.db"
    assert settings.smtp_url is None and settings.outbox == Path("outbox")
    assert settings.send_at == SendAt(4, time(9, 0))
    assert str(settings.timezone) == "UTC"


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    toml = tmp_path / "newsletter.toml"
    toml.write_text('site_name = "From the file"\nbase_url = "https://file.example.org"\n')
    settings = load_settings({"NEWSLETTER_SITE_NAME": "From the environment"}, toml)
    assert settings.site_name == "From the environment"
    assert settings.base_url == "https://file.example.org"


def test_the_file_is_found_through_newsletter_config(tmp_path: Path) -> None:
    toml = tmp_path / "elsewhere.toml"
    toml.write_text('send_at = "thu 17:30"\ntimezone = "Europe/Moscow"\n')
    settings = load_settings({"NEWSLETTER_CONFIG": str(toml)})
    assert settings.send_at == SendAt(3, time(17, 30))
    assert str(settings.timezone) == "Europe/Moscow"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("NEWSLETTER_SEND_AT", "friday at nine", "NEWSLETTER_SEND_AT: 'friday at nine' is not a weekday (or daily) and a time"),
        ("NEWSLETTER_SEND_AT", "fri 25:00", "NEWSLETTER_SEND_AT: 'fri 25:00' has no such time of day"),
        ("NEWSLETTER_TIMEZONE", "Mars/Olympus", "NEWSLETTER_TIMEZONE: unknown IANA time zone 'Mars/Olympus'"),
        ("NEWSLETTER_BASE_URL", "news.example.org", "NEWSLETTER_BASE_URL: must be an http:// or https:// address"),
        ("NEWSLETTER_SMTP_URL", "mail.example.org:25", "NEWSLETTER_SMTP_URL: must look like smtp://"),
        ("NEWSLETTER_SMTP_URL", "smtp://host:port", "NEWSLETTER_SMTP_URL: bad port"),
        ("NEWSLETTER_FROM", "not an address", "NEWSLETTER_FROM: must be an email address"),
    ],
)  # fmt: skip
def test_a_malformed_setting_names_its_variable(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings({variable: value}, tmp_path / "absent.toml")


def test_a_malformed_file_names_the_file_and_key(tmp_path: Path) -> None:
    toml = tmp_path / "newsletter.toml"
    toml.write_text('send_at = "someday"\n')
    with pytest.raises(ConfigError, match=r"newsletter.toml: send_at: 'someday' is not"):
        load_settings({}, toml)
    toml.write_text("send_at = \n")
    with pytest.raises(ConfigError, match=r"newsletter.toml: not valid TOML"):
        load_settings({}, toml)
    toml.write_text('sned_at = "fri 09:00"\n')
    with pytest.raises(ConfigError, match=r"unknown setting.*sned_at"):
        load_settings({}, toml)


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [s.variable for s in SETTINGS if f"`{s.variable}`" not in readme]
    assert missing == [], "run python -m newsletter.settings and paste the table into the README"
    assert settings_table() in readme
    documented = set(re.findall(r"`(NEWSLETTER_[A-Z_]+)`", readme))
    assert documented - {s.variable for s in SETTINGS} <= {"NEWSLETTER_CONFIG"}


def test_every_declared_setting_is_a_field() -> None:
    fields = set(Settings.__dataclass_fields__)
    assert {s.name if s.name != "from" else "from_addr" for s in SETTINGS} <= fields


@pytest.mark.parametrize(
    "weak", ["a", "correcthorse", "password" * 5, "0123456789" * 4, "Tr0ub4dor&3-Tr0ub4dor&3-Tr0ub"]
)
def test_a_weak_secret_key_is_refused_before_anything_starts(
    weak: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack: a short or word-like key is found from one's own confirmation link."""
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY: is too weak"):
        load_settings({"NEWSLETTER_SECRET_KEY": weak}, tmp_path / "none.toml")
    from newsletter.web import wsgi

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", weak)
    with pytest.raises(SystemExit, match="NEWSLETTER_SECRET_KEY: is too weak"):
        wsgi()


def test_a_key_made_as_the_readme_says_is_taken() -> None:
    import secrets

    key = secrets.token_urlsafe(32)
    assert load_settings({"NEWSLETTER_SECRET_KEY": key}, Path("/none.toml")).secret_key == key


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("NEWSLETTER_LIST_ID", "weekly.example.org\r\nBcc: all@example.net", "dotted identifier"),
        ("NEWSLETTER_LIST_ID", "weekly", "dotted identifier"),
        ("NEWSLETTER_BASE_URL", "https://news.example.org/\r\nX-Evil: 1", "control characters"),
        ("NEWSLETTER_SITE_NAME", "The Weekly\nBcc: all@example.net", "must be one line"),
        ("NEWSLETTER_POSTAL_ADDRESS", "1 Street\r\nX-Evil: 1", "must be one line"),
        ("NEWSLETTER_FROM", "The: Weekly <weekly@example.org>", "must be one mailbox"),
        ("NEWSLETTER_FROM", "a@example.org, b@example.org", "must be one mailbox"),
    ],
)
def test_a_setting_that_reaches_a_header_cannot_carry_another(
    variable: str, value: str, problem: str, tmp_path: Path
) -> None:
    """The attack: CR LF in a setting that lands in every message's headers."""
    with pytest.raises(ConfigError, match=f"{variable}: .*{problem}"):
        load_settings({variable: value}, tmp_path / "none.toml")


def test_a_quoted_name_with_a_colon_is_one_mailbox() -> None:
    value = '"The Weekly: Friday" <weekly@example.org>'
    assert load_settings({"NEWSLETTER_FROM": value}, Path("/none.toml")).from_addr == value


def test_every_setting_is_declared_once_and_every_option_object_starts_from_it() -> None:
    """A field of Settings takes its default from its one declaration in SETTINGS (so no
    field has a default of its own), and the option objects built from the settings
    start from the same values."""
    from dataclasses import fields

    from newsletter.bounces.record import Policy
    from newsletter.delivery.report import SendOptions
    from newsletter.readers.optin import Limits
    from newsletter.settings.table import _FIELD

    declared = {_FIELD.get(s.name, s.name) for s in SETTINGS}
    kept_by_the_desk = {"older_secret_keys", "newsletter_id"}  # not settings: the desk keeps them
    assert {f.name for f in fields(Settings)} == declared | kept_by_the_desk
    assert len(declared) == len(SETTINGS)
    defaults = Settings()
    assert all(
        getattr(defaults, _FIELD.get(s.name, s.name)) == s.parse(s.default) for s in SETTINGS
    )
    assert SendOptions() == SendOptions.from_settings(defaults)
    assert Policy() == Policy.from_settings(defaults)
    assert Limits() == Limits.from_settings(defaults)
    changed = load_settings({"NEWSLETTER_BOUNCE_AT_ONCE": "5.1.1"}, Path("/nonexistent.toml"))
    assert Policy.from_settings(changed).at_once == ("5.1.1",) != Policy().at_once
