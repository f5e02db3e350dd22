"""Signed tokens (HMAC with the secret key, via itsdangerous).

A token names one subscriber and one purpose; it cannot be forged, nor moved to
another reader or another purpose. Unsubscribe tokens never expire: old mail must
keep working. Confirmation tokens carry their issue time and the sign-up they
confirm, and are checked against a clock passed in.

Tokens are made with the current key and read with `Keys`: the current key first, then
older ones that still verify after `newsletter secret rotate`.
"""

from __future__ import annotations

import base64
import hmac
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from itsdangerous import BadSignature, Signer, URLSafeSerializer

from newsletter.errors import InputError
from newsletter.language import N_

READER = "reader"  # unsubscribe and view-online links
CONFIRM = "confirm"  # double opt-in
RECONSENT = "reconsent"  # agreeing to a new privacy policy


Keys = str | tuple[str, ...]  # one key, or the current key first and older ones after it


def key_list(keys: Keys) -> tuple[str, ...]:
    return (keys,) if isinstance(keys, str) else keys


class TokenError(InputError):
    """A token that was tampered with, truncated, expired or made for something else."""


@lru_cache(maxsize=8)
def _signer(secret: str, purpose: str) -> Signer:
    return Signer(secret, salt=purpose)


@lru_cache(maxsize=8)
def _reader_key(secret: str) -> bytes:
    return _signer(secret, READER).derive_key()


def reader_token(secret: str, subscriber_id: int) -> str:
    """`<id>.<signature>`, as itsdangerous's Signer signs it (its `unsign` checks it): made
    for every message of a send, so it is kept plain (a signed JSON payload costs a zlib
    call per reader) and the key is derived once, not per token."""
    value = str(subscriber_id)
    mac = hmac.digest(_reader_key(secret), value.encode("ascii"), "sha1")  # Signer's default
    return f"{value}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode('ascii')}"


def _load(keys: Keys, purpose: str, token: str) -> Any:
    for secret in key_list(keys):
        serializer = URLSafeSerializer(secret, salt=purpose)
        try:
            value = serializer.loads(token)
        except BadSignature:
            continue
        if serializer.dumps(value) == token:  # base64 decoding skips stray characters
            return value
    raise TokenError(N_("this link is not valid: it may be incomplete or altered"))


def read_reader_token(keys: Keys, token: str) -> int:
    for secret in key_list(keys):
        try:
            value = _signer(secret, READER).unsign(token).decode("ascii")
        except (BadSignature, UnicodeError):
            continue
        if value.isdigit() and reader_token(secret, int(value)) == token:
            return int(value)
    raise TokenError(N_("this link is not valid: it may be incomplete or altered"))


def timed_token(secret: str, purpose: str, subscriber_id: int, ref: str, now: datetime) -> str:
    """A token for one subscriber and one reference (a sign-up, a policy version)."""
    return URLSafeSerializer(secret, salt=purpose).dumps([subscriber_id, ref, int(now.timestamp())])


def read_timed_token(
    keys: Keys, purpose: str, token: str, now: datetime, max_age: timedelta
) -> tuple[int, str]:
    value = _load(keys, purpose, token)
    if not (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], int)
        and isinstance(value[1], str)
        and isinstance(value[2], int)
    ):
        raise TokenError(N_("this link is not valid"))
    issued = datetime.fromtimestamp(value[2], UTC)
    if now - issued > max_age:
        raise TokenError(N_("this link has expired: please sign up again to get a new one"))
    return value[0], value[1]
