"""Signed tokens (HMAC with the secret key, via itsdangerous).

A token names one subscriber and one purpose; it cannot be forged, nor moved to
another reader or another purpose. Unsubscribe tokens never expire: old mail must
keep working. Confirmation tokens carry their issue time and the sign-up they
confirm, and are checked against a clock passed in.
"""

from __future__ import annotations

import base64
import hmac
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from itsdangerous import BadSignature, Signer, URLSafeSerializer

from .errors import InputError

READER = "reader"  # unsubscribe and view-online links
CONFIRM = "confirm"  # double opt-in
RECONSENT = "reconsent"  # agreeing to a new privacy policy


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


def _load(secret: str, purpose: str, token: str) -> Any:
    serializer = URLSafeSerializer(secret, salt=purpose)
    try:
        value = serializer.loads(token)
    except BadSignature:
        value = None
    else:  # base64 decoding skips stray characters; only the exact token counts
        if serializer.dumps(value) == token:
            return value
    raise TokenError("this link is not valid: it may be incomplete or altered")


def read_reader_token(secret: str, token: str) -> int:
    try:
        value = _signer(secret, READER).unsign(token).decode("ascii")
    except (BadSignature, UnicodeError):
        value = ""
    if not value.isdigit() or reader_token(secret, int(value)) != token:
        raise TokenError("this link is not valid: it may be incomplete or altered")
    return int(value)


def timed_token(secret: str, purpose: str, subscriber_id: int, ref: str, now: datetime) -> str:
    """A token for one subscriber and one reference (a sign-up, a policy version)."""
    return URLSafeSerializer(secret, salt=purpose).dumps([subscriber_id, ref, int(now.timestamp())])


def read_timed_token(
    secret: str, purpose: str, token: str, now: datetime, max_age: timedelta
) -> tuple[int, str]:
    value = _load(secret, purpose, token)
    if not (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], int)
        and isinstance(value[1], str)
        and isinstance(value[2], int)
    ):
        raise TokenError("this link is not valid")
    issued = datetime.fromtimestamp(value[2], UTC)
    if now - issued > max_age:
        raise TokenError("this link has expired: please sign up again to get a new one")
    return value[0], value[1]
