"""Email addresses: checked and normalised by email-validator, with a fast path for bulk.

email-validator spends most of a call on the domain (IDNA, special-use names), which
a list of 100,000 readers repeats for a few thousand domains, and walks the local
part character by character. The fast path asks email-validator about each domain
once and accepts only local parts in the plain ASCII dot-atom form, which it accepts
unchanged; everything else takes the full check. A property test holds the two equal.
"""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import InputError

# RFC 5322 dot-atom, ASCII, already lower case: what email-validator passes through as is
_PLAIN_LOCAL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
LOCAL_MAX, ADDRESS_MAX = 64, 254


def _check(address: str) -> tuple[str, str]:
    """email-validator's verdict: the normalised address and its ASCII (IDNA) form."""
    valid = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    return str(valid.normalized).lower(), str(valid.ascii_email or valid.normalized).lower()


@lru_cache(maxsize=65536)
def _domain(domain: str) -> tuple[str, str]:
    normalized, ascii_form = _check("x@" + domain)
    return normalized[2:], ascii_form[2:]


def _known_domain(domain: str) -> tuple[str, str] | None:
    try:
        return _domain(domain)
    except EmailNotValidError:
        return None


def normalise_address(address: str) -> str:
    """The canonical form of an address (no DNS look-up), lower-cased whole.

    Mailbox providers ignore the local part's case, and a reader typing Anna@ and
    anna@ must be one subscriber, not two. Internationalised domains are welcome; a
    non-ASCII local part would need SMTPUTF8 all the way and is refused."""
    text = address.strip()
    local, at, domain = text.rpartition("@")
    lowered = local.lower()
    if at and len(local) <= LOCAL_MAX and local.isascii() and _PLAIN_LOCAL.fullmatch(lowered):
        known = _known_domain(domain)  # None: the full check below words the reason
        if known is not None and len(lowered) + 1 + len(known[1]) <= ADDRESS_MAX:
            return f"{lowered}@{known[0]}"
    try:
        return _check(text)[0]
    except EmailNotValidError as exc:
        raise InputError(f"email: {address!r} is not a valid address: {exc}") from None
