"""What a piece of returned mail (or a provider's event) says, as a verdict: its kind,
whom it is about (a signed return path, or the addresses it names, as readers are
stored), its status code, its words and the reason they give (newsletter.reasons)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from newsletter.compose.returnpath import ReturnPath
from newsletter.errors import InputError
from newsletter.readers.addresses import normalise_address

HARD, SOFT, COMPLAINT = "hard", "soft", "complaint"
AUTOREPLY, FORGED, UNRECOGNISED = "autoreply", "forged", "unrecognised"
OURS, DELAYED = "ours", "delayed"
ACTIONABLE = (HARD, SOFT, COMPLAINT)

DIAGNOSTIC_MAX = 500


@dataclass(frozen=True)
class Verdict:
    kind: str
    target: ReturnPath | None = None  # the delivery a valid return path names
    addresses: tuple[str, ...] = ()  # failing or reported addresses, when no return path
    code: str | None = None  # the status code, e.g. 5.1.1
    diagnostic: str = ""
    reason: str = ""  # newsletter.reasons' word for it


def valid_addresses(candidates: Sequence[str | bytes]) -> tuple[str, ...]:
    """The addresses a report names, as readers are stored (an internationalised domain
    in either form matches); a pipe, a spool path or a bare domain is no address."""
    found = []
    for candidate in candidates:
        text = candidate.decode("utf-8", "replace") if isinstance(candidate, bytes) else candidate
        text = text.strip().strip("<>").removeprefix("rfc822;").strip().strip("<>")
        try:
            found.append(normalise_address(text))
        except InputError:
            continue
    return tuple(dict.fromkeys(found))
