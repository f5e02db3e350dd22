"""The markers a rendering leaves where each reader's values go, and filling them in.

Per-reader values (name, address, unsubscribe and view-online links) are left in the
output as markers carrying a random nonce, so that filling them per reader is a cheap
split-and-join and no article text can pose as a marker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape


@dataclass(frozen=True)
class RenderedIssue:
    """An issue rendered once, with markers where each reader's values go."""

    subject: str
    preheader: str
    html: str
    text: str
    nonce: str
    fallbacks: tuple[str, ...] = ()
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", marker_pattern(self.nonce))

    def split_html(self) -> list[str]:
        """Literal text and marker keys, alternating: [text, key, text, key, …, text]."""
        return self.pattern.split(self.html)

    def split_text(self) -> list[str]:
        return self.pattern.split(self.text)


@dataclass(frozen=True)
class ReaderValues:
    """The values one reader's copy carries; escaped for where they land when filled."""

    name: str
    email: str
    unsubscribe_url: str
    view_url: str
    confirm_url: str = ""  # only in the double opt-in mail
    reconsent_url: str = ""  # only in the notice of a new privacy policy


FIELDS = ("email", "unsubscribe_url", "view_url", "confirm_url", "reconsent_url")


def marker(nonce: str, key: str, index: int = 0) -> str:
    return f"NL{nonce}T{key.upper().replace('_', '')}{index}E"


def marker_pattern(nonce: str) -> re.Pattern[str]:
    return re.compile(f"NL{nonce}T([A-Z]+[0-9]+)E")


class MarkerReader:
    """What templates see as `reader`: every attribute renders as a marker."""

    def __init__(self, nonce: str) -> None:
        self.nonce = nonce
        self.fallbacks: list[str] = []
        for name in FIELDS:
            setattr(self, name, marker(nonce, name))

    def name_or(self, fallback: str) -> str:
        """The reader's name, or `fallback` for a reader who gave none."""
        self.fallbacks.append(str(fallback))
        return marker(self.nonce, "name", len(self.fallbacks) - 1)


_FIELD_OF_KEY = {name.upper().replace("_", "") + "0": name for name in FIELDS}


def value_for(key: str, values: ReaderValues, fallbacks: tuple[str, ...]) -> str:
    """The plain value a marker key (as split out of the output) stands for."""
    if key.startswith("NAME"):
        return values.name or fallbacks[int(key[4:])]
    return str(getattr(values, _FIELD_OF_KEY[key]))


def fill(parts: list[str], values: ReaderValues, fallbacks: tuple[str, ...], html: bool) -> str:
    """Join split output with one reader's values, HTML-escaped in the HTML part."""
    out = parts[:]
    for i in range(1, len(out), 2):
        value = value_for(out[i], values, fallbacks)
        out[i] = escape(value) if html else value
    return "".join(out)


def personalise(rendered: RenderedIssue, values: ReaderValues) -> tuple[str, str]:
    """The HTML and text one reader gets (for previews; sending fills prepared bytes)."""
    return (
        fill(rendered.split_html(), values, rendered.fallbacks, html=True),
        fill(rendered.split_text(), values, rendered.fallbacks, html=False),
    )
