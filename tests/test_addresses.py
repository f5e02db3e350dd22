"""Address normalisation: the fast path agrees with email-validator's full check."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.errors import InputError
from newsletter.readers.addresses import _check, normalise_address

ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-."
DOMAINS = [
    "example.org", "Example.ORG", "пример.рф", "ПРИМЕР.РФ", "xn--e1afmkfd.xn--p1ai",
    "mail.example.co.uk", "localhost", "example", "-bad-.org", "a..b.org", "x" * 64 + ".org",
    "münchen.de", "example.invalid", "1.2.3.4", "[127.0.0.1]", "sub_domain.example.org",
]  # fmt: skip


def full(address: str) -> str | None:
    try:
        return _check(address.strip())[0]
    except EmailNotValidError:
        return None


def fast(address: str) -> str | None:
    try:
        return normalise_address(address)
    except InputError:
        return None


@pytest.mark.slow  # many generated examples
@settings(max_examples=2000)
@given(local=st.text(ATEXT, min_size=0, max_size=70), domain=st.sampled_from(DOMAINS))
def test_the_fast_path_agrees_with_email_validator(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    assert fast(address) == full(address)


@pytest.mark.slow  # many generated examples
@settings(max_examples=500)
@given(address=st.text(max_size=80))
def test_any_text_is_normalised_alike_or_refused_alike(address: str) -> None:
    assert fast(address) == full(address)


def test_long_addresses_hit_the_same_limits() -> None:
    domain = ".".join(["a" * 63] * 3) + ".org"  # 196 characters
    for size in (40, 57, 58, 64):
        address = f"{'b' * size}@{domain}"
        assert fast(address) == full(address), size


@pytest.mark.parametrize(
    ("given_address", "expected"),
    [
        ("Anna.Petrova@Example.ORG", "anna.petrova@example.org"),
        ("  ivan@ПРИМЕР.РФ ", "ivan@пример.рф"),
        ("o'brien+news@mail.example.co.uk", "o'brien+news@mail.example.co.uk"),
    ],
)
def test_examples(given_address: str, expected: str) -> None:
    assert normalise_address(given_address) == expected
