"""DKIM: every message signed over an explicit header list that includes RFC 8058's headers."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.compose.messages import Sender, build_message, prepare_message
from newsletter.compose.rendering import render_issue
from newsletter.errors import ConfigError
from newsletter.models import Reader
from newsletter.settings import Settings
from newsletter.transport.base import unstuff

from .conftest import NOW, ROOT
from .test_messages import SITE, an_issue


@pytest.fixture
def key_files(tmp_path: Path) -> tuple[Path, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    return path, record


def signed(settings: Settings, key: Path, stuffed: bool = False) -> bytes:
    signing = replace(settings, dkim_domain="example.org", dkim_selector="news", dkim_key=key)
    sender = Sender.from_settings(signing)
    rendered = render_issue(
        an_issue(title=".A title starting with a dot"), SITE, ROOT / "templates"
    )
    prepared = prepare_message(rendered, sender, 7, NOW)
    reader = Reader(1, "anna@example.org", "Анна")
    return build_message(
        prepared, reader, sender.reader_values(reader, 7), "<m@example.org>", stuffed
    )


def dns_for(record: bytes):  # type: ignore[no-untyped-def]
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"news._domainkey.example.org." else b""

    return dnsfunc


def test_a_signed_message_verifies(settings: Settings, key_files: tuple[Path, bytes]) -> None:
    key, record = key_files
    message = signed(settings, key)
    assert message.startswith(b"DKIM-Signature:")
    header = message.split(b"\r\n\r\n", 1)[0]
    assert b"c=relaxed/relaxed" in header
    for name in (b"list-unsubscribe-post", b"list-unsubscribe", b"from", b"to", b"subject"):
        assert name in header.lower().split(b"h=", 1)[1].split(b";", 1)[0]
    assert dkim.verify(message, dnsfunc=dns_for(record))


def test_the_dot_stuffed_copy_verifies_once_unstuffed(
    settings: Settings, key_files: tuple[Path, bytes]
) -> None:
    key, record = key_files
    message = signed(settings, key, stuffed=True)
    assert b"\r\n..A title" in message
    assert dkim.verify(unstuff(message), dnsfunc=dns_for(record))


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            b"List-Unsubscribe-Post: List-Unsubscribe=Two-Clicks",
        ),
        (b"Subject: Subject", b"Subject: Changed"),
    ],
)
def test_altering_a_signed_header_breaks_the_signature(
    settings: Settings, key_files: tuple[Path, bytes], before: bytes, after: bytes
) -> None:
    key, record = key_files
    message = signed(settings, key)
    assert before in message
    assert not dkim.verify(message.replace(before, after), dnsfunc=dns_for(record))


def test_dkim_settings_are_checked_before_any_reader(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set DKIM_DOMAIN, DKIM_SELECTOR and DKIM_KEY together"):
        Sender.from_settings(replace(settings, dkim_domain="example.org"))
    missing = replace(
        settings, dkim_domain="example.org", dkim_selector="s", dkim_key=tmp_path / "none.pem"
    )
    with pytest.raises(ConfigError, match=r"NEWSLETTER_DKIM_KEY: .*none\.pem"):
        Sender.from_settings(missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(ConfigError, match=r"NEWSLETTER_DKIM_KEY: .*garbage\.pem"):
        Sender.from_settings(replace(missing, dkim_key=garbage))
