"""`python send.py --now`, as cron or a person runs it, against a real SMTP server."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from newsletter import db
from newsletter.issues import send_day_on_or_after

from .conftest import ROOT, SECRET, SMTPServer, approved_issue, seed_readers


def run_send(
    tmp_path: Path, smtp_server: SMTPServer, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env |= {
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp_path}/subscribers/newsletter.db",
        "NEWSLETTER_SMTP_URL": smtp_server.url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_TEMPLATES": str(ROOT / "templates"),
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "send.py"), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_send_now_sends_this_send_days_approved_issue_once(desk, smtp_server, tmp_path) -> None:
    seed_readers(desk.engine)
    issue = approved_issue(desk.engine)
    friday = send_day_on_or_after(datetime.now(UTC).date())
    with desk.engine.begin() as conn:
        conn.execute(db.issues.update().where(db.issues.c.id == issue.id).values(send_date=friday))
    first = run_send(tmp_path, smtp_server, "--now")
    assert first.returncode == 0, first.stderr
    assert "sent now 3" in first.stdout
    second = run_send(tmp_path, smtp_server, "--now")
    assert second.returncode == 3 and "was sent already" in second.stdout  # nothing to do
    assert len(smtp_server.handler.received) == 3
    with desk.engine.connect() as conn:
        assert conn.execute(sa.select(db.issues.c.status)).scalar() == "sent"


def test_send_now_without_an_issue_says_so_and_fails(desk, smtp_server, tmp_path) -> None:
    result = run_send(tmp_path, smtp_server, "--now")
    assert result.returncode == 1
    assert "Nothing sent: there is no issue for" in result.stdout
    assert "NEWSLETTER_EDITORS is unset" in result.stdout
    assert smtp_server.handler.received == []
