"""Signed per-reader tokens (HMAC with the secret key, via itsdangerous).

A token names one subscriber and one purpose; it cannot be forged, nor moved to
another reader or another purpose. Unsubscribe tokens never expire: old mail must
keep working.
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeSerializer

from .errors import InputError

READER = "reader"  # unsubscribe and view-online links


class TokenError(InputError):
    """A token that was tampered with, truncated, expired or made for something else."""


def reader_token(secret: str, subscriber_id: int) -> str:
    return URLSafeSerializer(secret, salt=READER).dumps(subscriber_id)


def read_reader_token(secret: str, token: str) -> int:
    try:
        value = URLSafeSerializer(secret, salt=READER).loads(token)
    except BadSignature:
        raise TokenError("this link is not valid: it may be incomplete or altered") from None
    if not isinstance(value, int):
        raise TokenError("this link is not valid")
    return value
