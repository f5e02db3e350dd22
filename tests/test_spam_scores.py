"""Every mail kind as it is sent (through the library's own paths into a memory transport),
scored by SpamAssassin's local rules (`spamassassin -L -t`, Debian's spamassassin): at
or below 1.0 each. `pytest tests/test_spam_scores.py -s` prints each score and the rules
that hit.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from datetime import date

import pytest

from newsletter.app import Desk
from newsletter.delivery.notices import send_notices
from newsletter.delivery.send import send_issue, send_test
from newsletter.readers.subscribers import Mail
from newsletter.readers.tokens import CONFIRM, RECONSENT, timed_token
from newsletter.schedule.alerts import Alert, alert_editors
from newsletter.transport.base import MemoryTransport

from .conftest import NOW, SECRET, approved_issue, seed_readers

pytestmark = pytest.mark.slow  # SpamAssassin takes seconds a message

LIMIT = 1.0


def every_kind(desk: Desk) -> dict[str, bytes]:
    """One message of each kind, the bytes a relay would get."""
    settings = replace(desk.settings, editors=("editor@example.org",))
    engine = desk.engine
    [first, *_] = seed_readers(engine)
    issue = approved_issue(engine)
    kept = MemoryTransport()
    send_test(issue.id, ["editor@example.org"], engine, settings, kept, NOW)
    send_issue(issue.id, engine, settings, kept, lambda: NOW)
    mails = [
        Mail("confirm", first, "lena@example.org", "", timed_token(SECRET, CONFIRM, first, "1", NOW)),
        Mail("welcome", first, "lena@example.org", "Лена"),
        Mail("reconsent", first, "lena@example.org", "Лена",
             timed_token(SECRET, RECONSENT, first, "2026-11-01", NOW)),
    ]  # fmt: skip
    send_notices(mails, engine, settings, kept, NOW)
    alert = Alert(
        "reminder", date(2026, 11, 27), "Reminder: issue 1 is not approved", "Approve it."
    )
    alert_editors(alert, engine, settings, lambda: kept, NOW)
    kinds = ["test", "issue", "confirm", "welcome", "reconsent", "alert"]
    firsts: dict[str, bytes] = {}
    for envelope in kept.sent:
        head = envelope.message_id.strip("<").split(".")[0]
        kind = {"test": "test", "confirm": "confirm", "welcome": "welcome",
                "reconsent": "reconsent", "newsletter": "issue"}.get(head, "alert")  # fmt: skip
        firsts.setdefault(kind, envelope.data)
    assert sorted(firsts) == sorted(kinds), sorted(firsts)
    return firsts


def score(data: bytes) -> tuple[float, str]:
    """SpamAssassin's score and the rules that hit, from its report header."""
    checked = subprocess.run(
        ["spamassassin", "-L", "-t"], input=data, capture_output=True, timeout=120, check=False
    )
    status = ""
    for line in checked.stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("X-Spam-Status:") or (status and line[:1] in " \t"):
            status += line.strip() + " "
        elif status:
            break
    assert "score=" in status, checked.stderr.decode()[-2000:]
    value = float(status.split("score=")[1].split()[0])
    return value, status.split("tests=")[1].split(" autolearn")[0] if "tests=" in status else ""


@pytest.mark.skipif(
    shutil.which("spamassassin") is None, reason="no spamassassin (apt-get install spamassassin)"
)
def test_every_mail_kind_scores_at_most_one(desk: Desk) -> None:
    scores = {kind: score(data) for kind, data in every_kind(desk).items()}
    for kind, (value, rules) in scores.items():
        print(f"{kind:10} {value:5.1f}  {rules}")
    over = {kind: s for kind, s in scores.items() if s[0] > LIMIT}
    assert over == {}, scores
