"""The delivery engine against a real SMTP server in its own process: crashes, relay faults,
clean stops. The ledger must agree, reader by reader, with what the server accepted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.app import Desk
from newsletter.delivery.ledger import counts
from newsletter.delivery.report import SendOptions
from newsletter.delivery.send import send_issue
from newsletter.readers.consent import current_policy
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.transport.pool import open_transport

from .conftest import ROOT, SECRET, approved_issue, free_port


@dataclass
class Recorder:
    process: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def wait_for(self, count: float, sender: subprocess.Popen[str] | None = None) -> None:
        """Until the server has taken `count` messages (the sender, if given, must still run)."""
        deadline = time.monotonic() + 60
        while sum(self.recipients().values()) < count:
            assert sender is None or sender.poll() is None, "the send ended too early"
            assert time.monotonic() < deadline, f"the server took fewer than {count} in 60 s"
            time.sleep(0.005)

    def recipients(self) -> Counter[str]:
        if not self.log.exists():
            return Counter()
        return Counter(line.split("\t")[0] for line in self.log.read_text().splitlines())

    def times(self) -> list[float]:
        """When the server took each message (its clock), in order."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [float(line.split("\t")[2]) for line in lines]


def start_recorder(
    tmp_path: Path,
    delay: float = 0.0,
    rules: str = "{}",
    pipelining: bool = True,
    sessions: bool = False,
) -> Recorder:
    """The recording SMTP server in its own process; `sessions` also logs one line per
    connection (EHLO) to the log's .sessions file."""
    port, log = free_port(), tmp_path / f"received-{time.monotonic_ns()}.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.recording_smtp",
            str(port),
            str(log),
            "--delay",
            str(delay),
            "--rules",
            rules,
            *(["--pipelining"] if pipelining else []),
            *(["--sessions", str(log.with_suffix(".sessions"))] if sessions else []),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return Recorder(process, port, log)


@pytest.fixture
def recorders(tmp_path: Path) -> Iterator[list[Recorder]]:
    started: list[Recorder] = []
    yield started
    for recorder in started:
        recorder.process.terminate()
        recorder.process.wait(timeout=10)
        if recorder.process.stdout is not None:
            recorder.process.stdout.close()


def seed_many(engine: sa.Engine, count: int) -> list[str]:
    """Active readers with evidence, inserted in bulk (the library path is tested elsewhere)."""
    now = datetime.now(UTC)  # clock: the sends that follow stamp their rows with the wall clock
    addresses = [f"reader{n:05d}@example.org" for n in range(count)]
    with engine.begin() as conn:
        policy = current_policy(conn)
        conn.execute(
            db.subscribers.insert(),
            [
                {
                    "email": a,
                    "name": "",
                    "status": "active",
                    "policy_version": policy.version,
                    "created_at": now,
                    "updated_at": now,
                }
                for a in addresses
            ],
        )
        ids = conn.execute(sa.select(db.subscribers.c.id)).scalars().all()
        conn.execute(
            db.consent_events.insert(),
            [
                {
                    "subscriber_id": i,
                    "kind": "imported",
                    "at": now,
                    "source": "tests",
                    "policy_version": policy.version,
                    "policy_sha256": policy.sha256,
                    "wording": policy.wording,
                }
                for i in ids
            ],
        )
    return addresses


def ledger_by_reader(engine: sa.Engine, issue_id: int) -> dict[str, str]:
    d, s = db.deliveries, db.subscribers
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(s.c.email, d.c.status)
            .join(d, d.c.subscriber_id == s.c.id)
            .where(d.c.issue_id == issue_id)
        )
        return {email: status for email, status in rows}


def send_through(engine: sa.Engine, settings: Settings, issue_id: int, **options: Any) -> Any:
    """send_issue with one SMTP connection per thread to the settings' relay, real clock."""
    return send_issue(
        issue_id,
        engine,
        settings,
        lambda: open_transport(settings.smtp_url, settings.outbox),
        lambda: datetime.now(UTC),  # clock: a real relay's retries and rates run on it
        **options,
    )


def cli_env(settings: Settings, smtp_url: str, concurrency: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return env | {
        "NEWSLETTER_DATABASE_URL": settings.database_url,
        "NEWSLETTER_SMTP_URL": smtp_url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_TEMPLATES": str(settings.templates),
        "NEWSLETTER_BASE_URL": settings.base_url,
        "NEWSLETTER_CONCURRENCY": str(concurrency),
    }


@pytest.mark.parametrize("kill_at", [0.1, 0.6])
def test_a_send_killed_mid_way_resumes_and_mails_nobody_twice(
    desk: Desk, tmp_path: Path, recorders: list[Recorder], kill_at: float
) -> None:
    readers, concurrency = 2000, 4
    addresses = seed_many(desk.engine, readers)
    issue = approved_issue(desk.engine, picks=3)
    recorder = start_recorder(tmp_path, delay=0.003)
    recorders.append(recorder)
    env = cli_env(desk.settings, recorder.url, concurrency)
    sender = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", str(issue.id), "--wait", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    recorder.wait_for(readers * kill_at, sender)
    sender.send_signal(signal.SIGKILL)
    sender.wait(timeout=10)
    at_kill = sum(recorder.recipients().values())
    assert at_kill < readers

    again = subprocess.run(
        [sys.executable, "-m", "newsletter", "send", str(issue.id), "--wait", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    received, ledger = recorder.recipients(), ledger_by_reader(desk.engine, issue.id)
    uncertain = {a for a, status in ledger.items() if status == "uncertain"}
    assert len(uncertain) <= concurrency
    assert set(ledger.values()) <= {"sent", "uncertain"}
    for address in addresses:
        if address in uncertain:
            assert received[address] <= 1, address
        else:
            assert received[address] == 1, (address, ledger[address], received[address])
            assert ledger[address] == "sent"
    for address in uncertain:
        assert f"uncertain: {address}" in again.stdout


@pytest.mark.parametrize("pipelining", [True, False])
def test_relay_faults_end_in_a_ledger_that_matches_the_server(
    desk: Desk, tmp_path: Path, recorders: list[Recorder], pipelining: bool
) -> None:
    addresses = seed_many(desk.engine, 40)
    issue = approved_issue(desk.engine, picks=2)
    rules = {
        "550": addresses[0:3],  # unknown users: failed, counted as bounces
        "451": addresses[3:5],  # always busy: deferred until the attempts run out
        "451-once": addresses[5:9],  # busy once: sent on the retry
        "drop-at-rcpt-once": addresses[9:12],  # connection dropped before DATA: sent on retry
        "drop-once": addresses[12:14],  # dropped after the body, no reply: uncertain, not re-sent
    }
    import json

    recorder = start_recorder(tmp_path, rules=json.dumps(rules), pipelining=pipelining)
    recorders.append(recorder)
    settings = replace(desk.settings, smtp_url=recorder.url, bounce_limit=1)
    options = SendOptions(
        concurrency=3,
        retry_base=timedelta(milliseconds=20),
        max_attempts=3,
        wait_for_retries=timedelta(seconds=20),
    )
    report = send_through(desk.engine, settings, issue.id, options=options)
    received, ledger = recorder.recipients(), ledger_by_reader(desk.engine, issue.id)
    for address in addresses:
        if address in rules["550"] + rules["451"]:
            expected, copies = "failed", 0
        elif address in rules["drop-once"]:  # the server closed without taking it
            expected, copies = "uncertain", 0
        else:
            expected, copies = "sent", 1
        assert (ledger[address], received[address]) == (expected, copies), address
    assert (report.sent, report.failed, report.uncertain) == (33, 5, 2)
    assert all(f"uncertain: {a}" in "\n".join(report.lines()) for a in rules["drop-once"])
    with desk.engine.connect() as conn:
        statuses = dict(
            conn.execute(sa.select(db.subscribers.c.email, db.subscribers.c.status)).all()
        )
    assert {a for a, s in statuses.items() if s == "bounced"} == set(rules["550"])
    assert report.status == "sending"  # the uncertain two wait for a decision


def test_a_relay_that_refuses_everything_pauses_the_send_with_a_reason(
    desk: Desk, tmp_path: Path, recorders: list[Recorder]
) -> None:
    seed_many(desk.engine, 300)
    issue = approved_issue(desk.engine, picks=2)
    nobody = f"smtp://127.0.0.1:{free_port()}"
    settings = replace(desk.settings, smtp_url=nobody)
    options = SendOptions(concurrency=2, pause_after=5)
    report = send_through(desk.engine, settings, issue.id, options=options)
    assert report.paused and "5 relay failures in a row" in report.paused
    assert "Connection refused" in report.paused
    with desk.engine.connect() as conn:
        assert counts(conn, issue.id) == {"pending": 300}
    recorder = start_recorder(tmp_path)
    recorders.append(recorder)
    settings = replace(settings, smtp_url=recorder.url)
    resumed = send_through(desk.engine, settings, issue.id, options=options)
    assert resumed.sent == 300 and resumed.status == "sent"
    assert set(recorder.recipients().values()) == {1}


def test_a_stop_request_finishes_in_flight_and_puts_the_rest_back(
    desk: Desk, tmp_path: Path, recorders: list[Recorder]
) -> None:
    seed_many(desk.engine, 1000)
    issue = approved_issue(desk.engine, picks=2)
    recorder = start_recorder(tmp_path, delay=0.002)
    recorders.append(recorder)
    settings = replace(desk.settings, smtp_url=recorder.url)
    stop = threading.Event()

    def stop_after_some() -> None:  # mid-send, whatever the machine's speed
        try:
            recorder.wait_for(100)
        finally:
            stop.set()

    threading.Thread(target=stop_after_some, daemon=True).start()
    factory = lambda: open_transport(settings.smtp_url, settings.outbox)  # noqa: E731
    first = send_issue(
        issue.id,
        desk.engine,
        settings,
        factory,
        lambda: datetime.now(UTC),  # clock: the stop lands mid-send in real time
        options=SendOptions(concurrency=4),
        stop=stop,
    )
    assert first.stopped and 0 < first.sent < 1000
    with desk.engine.connect() as conn:
        left = counts(conn, issue.id)
    assert left == {"sent": first.sent, "pending": 1000 - first.sent}
    second = send_issue(issue.id, desk.engine, settings, factory,
                        lambda: datetime.now(UTC))  # clock: after the first, in real time  # fmt: skip
    assert second.sent == 1000 - first.sent and second.status == "sent"
    assert set(recorder.recipients().values()) == {1}
    assert sum(recorder.recipients().values()) == 1000


def test_sigterm_stops_the_command_cleanly_and_prints_the_report(
    desk: Desk, tmp_path: Path, recorders: list[Recorder]
) -> None:
    seed_many(desk.engine, 1500)
    issue = approved_issue(desk.engine, picks=2)
    recorder = start_recorder(tmp_path, delay=0.003)
    recorders.append(recorder)
    env = cli_env(desk.settings, recorder.url, 4)
    sender = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", str(issue.id), "--wait", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    recorder.wait_for(200, sender)
    sender.send_signal(signal.SIGTERM)
    out, err = sender.communicate(timeout=60)
    assert sender.returncode == 0, err
    assert "stopped on request" in out and "stopping: finishing the messages in flight" in err
    with desk.engine.connect() as conn:
        left = counts(conn, issue.id)
    assert set(left) <= {"sent", "pending"}, left  # nothing reserved or in flight is left behind
    assert left["sent"] == sum(recorder.recipients().values())
    assert set(recorder.recipients().values()) == {1}
