"""Why a message was not delivered, in one vocabulary for a relay's refusal during a send
and for mail that comes back later: the reasons of the field's reference classifier
(Sisimai). A reason says whose fault it is, and so what it may change:

- the reader's address (userunknown, hostunknown, hasmoved, notaccept): a hard bounce,
  counted toward the reader's bounce limit;
- the reader's mailbox for now (mailboxfull, suspend, exceedlimit): a soft bounce;
- the sender's side (blocked, spamdetected, policyviolation, securityerror, rejected,
  ratelimited, speeding, toomanyconn, contenterror, mesgtoobig, virusdetected): our
  address, reputation, authentication or content, never the reader's; a send meeting
  it pauses instead of failing reader after reader;
- the way there (networkerror, systemerror, mailererror, expired, undefined): tried
  again, nobody's bounce.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REASONS = (
    "userunknown", "hostunknown", "hasmoved", "notaccept", "suspend", "mailboxfull",
    "exceedlimit", "mesgtoobig", "contenterror", "spamdetected", "virusdetected",
    "policyviolation", "blocked", "rejected", "securityerror", "toomanyconn", "speeding",
    "ratelimited", "expired", "networkerror", "systemerror", "mailererror", "feedback",
    "vacation", "delivered", "undefined",
)  # fmt: skip
HARD = frozenset({"userunknown", "hostunknown", "hasmoved", "notaccept"})
SOFT = frozenset({"mailboxfull", "suspend", "exceedlimit"})
SENDER = frozenset(
    {"blocked", "spamdetected", "policyviolation", "securityerror", "rejected", "ratelimited",
     "speeding", "toomanyconn", "contenterror", "mesgtoobig", "virusdetected"}
)  # fmt: skip
PHASES = ("connect", "greeting", "tls", "auth", "MAIL", "RCPT", "DATA", "end of DATA")

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")

# Words in a reply that name a reason, most specific first: a reply's words beat its code
# when they are more specific ("550 5.1.1 ... blacklisted" is our listing, not a user).
_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        ("networkerror", r"greylist|graylist"),  # try again later: nobody's fault
        # Office 365's answer for an address its directory does not have (DBEB)
        ("userunknown", r"recipient address rejected: access denied"),
        ("blocked", r"black\s?list|block\s?list|blocked|spamhaus|spamcop|barracuda|\bsorbs\b|"
                    r"\brbl\b|dnsbl|listed (?:at|on|by)|listed in (?:the )?(?:rbl|dnsbl|\S*bl\b)|"
                    r"poor reputation|ip reputation|client host .{0,80} rejected|"
                    r"not allowed to send (?:mail )?from|banned|\[ts0?\d\]|permanently deferred|"
                    r"traffic not accepted|helo command rejected|not accepted from this ip"),
        ("securityerror", r"\bspf\b|\bdkim\b|\bdmarc\b|authenticat|not authorized|"
                          r"sender (?:address )?(?:rejected|denied|not permitted)|"
                          r"relay(?:ing)? (?:access )?denied|not owned by|"
                          r"sender .{0,80}not (?:allowed|owned)|unauthenticated|sender verif|"
                          r"verification failed for|address is not verified"),
        ("ratelimited", r"rate limit|too many (?:messages|recipients|mails|emails)|"
                        r"(?:hourly|daily) (?:sending )?(?:quota|limit)|"
                        r"throttl|sending limit|exceeded .{0,80}quota for sending"),
        ("toomanyconn", r"too many (?:connections|concurrent|sessions)"),
        ("spamdetected", r"\bspam\b|junk mail|unsolicited|bulk mail|content rejected"),
        ("virusdetected", r"virus|malware|infected"),
        ("policyviolation", r"policy|prohibited|not accepted here|message refused|"
                            r"access denied|administrative prohibition"),
        ("mesgtoobig", r"message (?:is )?too (?:large|big)|size (?:limit|exceed)|"
                       r"exceeds (?:the )?(?:maximum )?(?:message )?size|"
                       r"maximum (?:incoming )?message size"),
        ("mailboxfull", r"(?:mailbox|inbox|mail ?folder|mailfolder) (?:is )?full|over ?quota|"
                        r"quota exceeded|exceed\w* (?:their |the |his |her )?(?:disk )?quota|"
                        r"insufficient (?:system )?storage|mailbox size limit|exceeded storage"),
        ("suspend", r"suspend|disabled|inactive|deactivated|not active|account .{0,80}closed"),
        ("hasmoved", r"has moved|no longer (?:on server|valid|with)|address .{0,80} replaced"),
        ("hostunknown", r"host (?:not found|unknown)|unknown host(?!name|s)\b|"
                        r"domain (?:not found|does not exist|unknown)|no such domain|"
                        r"unrouteable|nxdomain|no mx|name or service not known|"
                        r"host or domain name not found"),
        ("notaccept", r"does not accept (?:e-?)?mail|null mx|accepts no mail"),
        ("userunknown", r"user unknown|unknown user|no such (?:user|mailbox|recipient|"
                        r"address)|(?:recipient|mailbox|address|user) (?:\S+ )?(?:does not exist|"
                        r"not found|unavailable|unknown|rejected)|invalid (?:recipient|"
                        r"mailbox)|not (?:a )?valid (?:recipient|mailbox)|"
                        r"mailbox not found|unknown or illegal alias|no mailbox here|"
                        r"not listed in (?:the )?(?:domino |public )?(?:name and address )?"
                        r"(?:directory|book)|no such local user|address unknown|"
                        r"recipient name is not recognized|unknown recipient|user not found|"
                        r"did not (?:exactly )?match an? .{0,80}(?:e-?mail )?address|"
                        r"(?:doesn't|does not) have an? \S+ account|no such account|"
                        r"account (?:does not|doesn't) exist|user not known|"
                        r"invalid (?:final delivery )?userid|"
                        r"(?<!expéditeur )(?<!expediteur )n['’]existe pas|"
                        r"recipientnotfound|recipient not found|unknown address|"
                        r"account (?:that you tried to reach )?(?:does not|doesn't) exist|"
                        r"no matches to nameserver query|no final (?:e-?mail )?delivery point|"
                        r"not have a final (?:e-?mail )?delivery point"),
        ("expired", r"delivery time expired|expired|too long in queue|retry timeout|"
                    r"failed \d+ attempts|after \d+ attempts|too many (?:delivery )?attempts|"
                    r"could not be delivered (?:for|within) \d+ (?:days|hours)|timed out"),
        ("mailererror", r"command died|command output|mailer error|program exited|"
                        r"exit(?:ed)? (?:with )?status \d+"),
        ("networkerror", r"connection (?:timed out|refused|reset)|network|dns|timeout"),
    )
)  # fmt: skip

# RFC 3463's subject and detail digits, where the code alone says enough
_BY_CODE = {
    "1.1": "userunknown", "1.2": "hostunknown", "1.3": "userunknown", "1.6": "hasmoved",
    "1.10": "notaccept", "2.1": "suspend", "2.2": "mailboxfull", "2.3": "exceedlimit",
    "2.4": "systemerror", "3.1": "systemerror", "3.4": "mesgtoobig", "4.1": "networkerror",
    "4.2": "networkerror", "4.4": "hostunknown", "4.6": "networkerror",
    "4.7": "expired", "5.3": "ratelimited", "6.0": "contenterror", "7.0": "policyviolation",
    "7.1": "rejected", "7.7": "contenterror", "7.8": "securityerror", "7.9": "securityerror",
    "7.23": "securityerror", "7.24": "securityerror", "7.25": "securityerror",
    "7.26": "securityerror", "7.27": "notaccept",
}  # fmt: skip
# a sender-side subject: 5.1.7 and 5.1.8 are our own address; 5.7.x is policy
_SENDER_ADDRESS = {"1.7", "1.8"}


@dataclass(frozen=True)
class Verdict:
    """A refusal read: the reason, and whose fault it is."""

    reason: str
    enhanced: str = ""  # RFC 3463, "5.1.1"; "" when the reply carried none
    phase: str = ""  # for a refusal during a send: where in the transaction

    @property
    def hard(self) -> bool:
        return self.reason in HARD

    @property
    def soft(self) -> bool:
        return self.reason in SOFT

    @property
    def senders(self) -> bool:
        """Our address, reputation, authentication or content: not the reader's fault."""
        return self.reason in SENDER


def enhanced_code(text: str) -> str:
    """The first RFC 3463 status code in a reply or diagnostic, or ""."""
    found = _ENHANCED.search(text)
    return ".".join(found.groups()) if found else ""


def read(code: int | None, text: str, phase: str = "", status: str = "") -> Verdict:
    """The reason of a reply (`code` and `text`, with `status` from a DSN when known):
    where the words are more specific than the code they win, so a "5.1.1" that says
    "IP blacklisted" is a block of ours, not an unknown user. The words are read without
    the addresses and links a reply quotes: <policy@…> is a mailbox, not a policy."""
    text = text[:READ_MAX]  # a reply's or a notice's reason is in its first lines
    enhanced = status or enhanced_code(text)
    words = _from_words(_QUOTED.sub(" ", text))
    if _DNS_AGAIN.search(text) and not enhanced.startswith("5"):
        words = "networkerror"  # Postfix's "Host not found, try again": a DNS server that
        # did not answer, not a domain that does not exist
    if phase in ("MAIL", "connect", "greeting", "tls", "auth"):
        # a refusal before any recipient was named cannot be about the reader
        return Verdict(words if words in SENDER else "rejected", enhanced, phase)
    subject = enhanced.split(".", 1)[1] if enhanced.count(".") == 2 else ""
    by_code = _BY_CODE.get(subject, "")
    if subject in _SENDER_ADDRESS:
        by_code = "rejected"
    elif not by_code and subject.startswith("7."):
        by_code = "policyviolation"  # 5.7.x: security or policy, ours whatever the detail
    # a vague code yields to the words, but 5.1.7 and 5.1.8 name our own sender address,
    # whatever a reply says after them; Office 365 says 5.1.10 for an unknown recipient
    vague = subject not in _SENDER_ADDRESS and by_code in (
        "rejected",
        "policyviolation",
        "networkerror",
        "systemerror",
        "notaccept",
    )
    if words and (not by_code or words in _STRONG or (vague and words in HARD | SOFT)):
        reason = words
    elif by_code:
        reason = by_code
    else:
        reason = words or "undefined"
    if reason == "expired" and phase:
        reason = "networkerror"  # a live refusal does not expire
    return Verdict(reason, enhanced, phase)


READ_MAX = 2000
_DNS_AGAIN = re.compile(r"host not found[,.]?\s*try again", re.IGNORECASE)
# an address in angle brackets or bare, and a link: what a reply quotes, not what it says
_QUOTED = re.compile(r"<[^<>\s]*>|\S+@\S+|https?://\S+")
# words of ours that beat any code: a block list, a rate, SPF/DKIM, a sender refused
_STRONG = frozenset({"blocked", "ratelimited", "securityerror", "toomanyconn", "spamdetected",
                     "virusdetected", "mesgtoobig", "networkerror"})  # fmt: skip


def _from_words(text: str) -> str:
    for reason, pattern in _WORDS:
        if pattern.search(text):
            return reason
    return ""
