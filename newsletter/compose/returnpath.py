"""Signed per-delivery return paths (VERP): the envelope sender names one (issue, reader).

`bounces@news.example.org` becomes `bounces+<issue>-<reader>-<signature>@news.example.org`
(issue 0 for the notices a reader gets outside issues: confirmation, welcome, re-consent).
A bounce comes back to that address, so it maps to exactly one delivery even when the
bounce itself is mangled. The signature is an HMAC under the secret key, truncated to
48 bits and written in lower-case hex, which survives servers that fold the case of
local parts. Precomputed per issue: a message costs one HMAC copy and update.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr

from newsletter.readers.tokens import Keys, key_list

PURPOSE = b"newsletter return path"
SIGNATURE_CHARS = 12
NO_ISSUE = 0  # the "issue" of a notice (a confirmation, a welcome): a reader's own mail


@dataclass(frozen=True)
class ReturnPath:
    """What a valid return path names."""

    issue_id: int
    subscriber_id: int


def _key(secret: str) -> bytes:
    return hmac.digest(secret.encode("utf-8"), PURPOSE, "sha256")


def _split(bounce_address: str) -> tuple[str, str]:
    local, _, domain = parseaddr(bounce_address)[1].rpartition("@")
    return local, domain


def return_paths(
    secret: str, bounce_address: str | None, issue_id: int, fallback: str
) -> Callable[[int], str]:
    """The return path of each reader of one issue; `fallback` when no bounce address is set."""
    if not bounce_address:
        return lambda _subscriber_id: fallback
    local, domain = _split(bounce_address)
    issue_mac = hmac.new(_key(secret), f"{issue_id}.".encode(), hashlib.sha256)
    prefix = f"{local}+{issue_id}-"

    def return_path(subscriber_id: int) -> str:
        mac = issue_mac.copy()
        mac.update(str(subscriber_id).encode())
        return f"{prefix}{subscriber_id}-{mac.hexdigest()[:SIGNATURE_CHARS]}@{domain}"

    return return_path


class ReturnPathReader:
    """Finds our return paths in text and checks their signatures."""

    def __init__(self, keys: Keys, bounce_address: str) -> None:
        self.keys = [_key(secret) for secret in key_list(keys)]  # the current key first
        self.local, self.domain = _split(bounce_address)
        self.pattern = re.compile(
            rf"(?<![\w.+-]){re.escape(self.local)}\+([0-9a-z.=_-]{{1,80}})@{re.escape(self.domain)}",
            re.IGNORECASE,
        )

    def candidates(self, text: str) -> list[str]:
        """The token part of every `local+token@domain` in the text, in order."""
        return [match.group(1).lower() for match in self.pattern.finditer(text)]

    def check(self, token: str) -> ReturnPath | None:
        """The delivery a token names, or None when it is forged, altered or not ours."""
        parts = token.split("-")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            return None
        issue_id, subscriber_id = int(parts[0]), int(parts[1])
        for key in self.keys:
            mac = hmac.new(key, f"{issue_id}.{subscriber_id}".encode(), hashlib.sha256)
            if hmac.compare_digest(mac.hexdigest()[:SIGNATURE_CHARS], parts[2]):
                return ReturnPath(issue_id, subscriber_id)
        return None

    def is_ours(self, address: str) -> bool:
        """The bounce address itself or any `local+…` form of it (for the SMTP listener)."""
        local, _, domain = address.strip().strip("<>").rpartition("@")
        if domain.lower() != self.domain.lower():
            return False
        return local.lower() == self.local.lower() or local.lower().startswith(
            self.local.lower() + "+"
        )
