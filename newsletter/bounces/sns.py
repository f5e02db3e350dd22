"""Amazon SNS messages, which carry SES's notifications to POST /hooks/ses: the signature
checked against the signing certificate SNS names (fetched over https from an SNS host
only, as a feed is fetched: deadline, byte cap), the topic checked against ours, and a
subscription confirmed by visiting its SubscribeURL on the same kind of host."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from newsletter.curation.fetch import FetchLimits, fetch
from newsletter.errors import FeedError, InputError

AWS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?$")
CERT_BYTES = 64 * 1024
# SNS retries a notice for up to an hour at most (its longest delivery policy), keeping
# the Timestamp it was published with: one older than that is a replay
MAX_AGE = timedelta(hours=1)
SKEW = timedelta(minutes=5)  # a clock a little ahead of ours

# the fields each kind of message signs, in order (SNS's "string to sign")
_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip


def string_to_sign(message: dict[str, Any]) -> bytes:
    kind = message.get("Type")
    if kind not in _SIGNED:
        raise InputError(f"SNS message: Type {kind!r} is not one SNS sends")
    lines = []
    for name in _SIGNED[str(kind)]:
        if name in message and message[name] is not None:
            lines += [name, str(message[name])]
        elif name != "Subject":
            raise InputError(f"SNS message: {name} is missing")
    return ("\n".join(lines) + "\n").encode()


def sns_url(url: object, host: str | None) -> str:
    """A URL SNS may send us to: https, on an SNS host (or the one the settings name)."""
    if not isinstance(url, str):
        raise InputError("SNS message: a URL is missing")
    parts = urlsplit(url)
    name = (parts.hostname or "").lower()
    if parts.scheme != "https" or not (name == host if host else AWS_HOST.match(name)):
        raise InputError(f"SNS message: {url[:200]!r} is not an SNS address")
    return url


@lru_cache(maxsize=16)
def _certificate(url: str, limits: FetchLimits) -> bytes:
    return fetch(url, limits)


def fresh(message: dict[str, Any], now: datetime) -> bool:
    """True when the message's signed Timestamp is from the last hour (give or take a few
    minutes, for clocks that differ)."""
    stamp = message.get("Timestamp")
    if not isinstance(stamp, str):
        return False
    try:
        published = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return False
    if published.tzinfo is None:
        return False
    return now - MAX_AGE - SKEW <= published <= now + SKEW


def verified(message: dict[str, Any], limits: FetchLimits, host: str | None) -> bool:
    """True when the message is signed by the certificate SNS names for it."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    url = sns_url(message.get("SigningCertURL") or message.get("SigningCertUrl"), host)
    version = str(message.get("SignatureVersion", ""))
    digest = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(version)
    if digest is None:
        return False
    try:
        pem = _certificate(url, replace_cap(limits))
        key = x509.load_pem_x509_certificate(pem).public_key()
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (FeedError, ValueError):
        return False
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(), digest)
    except InvalidSignature:
        return False
    return True


def replace_cap(limits: FetchLimits) -> FetchLimits:
    return replace(limits, max_bytes=CERT_BYTES)


def confirm_subscription(message: dict[str, Any], limits: FetchLimits, host: str | None) -> None:
    """Visit the SubscribeURL, as SNS asks, so the topic starts sending to the hook."""
    fetch(sns_url(message.get("SubscribeURL"), host), replace_cap(limits))
