"""The Friday scheduler: fire times across daylight-saving changes, the lease that keeps
two schedulers from both sending, the alerts, and the real scheduler in its own process
against a real SMTP server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from newsletter.app import Desk
from newsletter.curation.issues import new_issue
from newsletter.errors import ConfigError, LeaseHeld
from newsletter.schedule.job import FridayJob
from newsletter.schedule.lease import renew_lease, take_lease
from newsletter.schedule.when import last_fire, next_fire
from newsletter.settings import load_settings
from newsletter.settings.values import WEEKDAYS, SendAt, parse_send_at
from newsletter.store import tables as db
from newsletter.store.engine import create_db_engine, upgrade_database

from .conftest import NOW, ROOT, SECRET, SMTPServer, approved_issue, seed_readers

FRIDAY_9 = parse_send_at("fri 09:00")
EDITORS = "desk@example.org, chief@example.org"
# the send time of a scheduler test: far enough ahead for a process to start on a busy
# machine (a scheduler that starts after it plans next week's instead)
FIRE_AHEAD = 8


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Fire times --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "after", "fires_utc"),
    [
        # Europe/Amsterdam: CET (+1) until Sunday 29 March 2026, CEST (+2) until 25 October
        ("Europe/Amsterdam", utc(2026, 3, 23), [utc(2026, 3, 27, 8), utc(2026, 4, 3, 7)]),
        ("Europe/Amsterdam", utc(2026, 10, 19), [utc(2026, 10, 23, 7), utc(2026, 10, 30, 8)]),
        # Europe/London: GMT, BST from 29 March to 25 October
        ("Europe/London", utc(2026, 3, 23), [utc(2026, 3, 27, 9), utc(2026, 4, 3, 8)]),
        ("Europe/London", utc(2026, 10, 19), [utc(2026, 10, 23, 8), utc(2026, 10, 30, 9)]),
        # America/New_York: EST (-5), EDT (-4) from 8 March to 1 November 2026
        ("America/New_York", utc(2026, 3, 2), [utc(2026, 3, 6, 14), utc(2026, 3, 13, 13)]),
        ("America/New_York", utc(2026, 10, 26), [utc(2026, 10, 30, 13), utc(2026, 11, 6, 14)]),
        # Europe/Moscow: +3 all year
        ("Europe/Moscow", utc(2026, 3, 23), [utc(2026, 3, 27, 6), utc(2026, 4, 3, 6)]),
        ("Europe/Moscow", utc(2026, 10, 19), [utc(2026, 10, 23, 6), utc(2026, 10, 30, 6)]),
    ],
)
def test_the_send_stays_at_nine_on_the_wall_clock_across_daylight_saving(
    zone: str, after: datetime, fires_utc: list[datetime]
) -> None:
    tz = ZoneInfo(zone)
    first = next_fire(FRIDAY_9, tz, after)
    second = next_fire(FRIDAY_9, tz, first + timedelta(seconds=1))
    assert [first, second] == fires_utc
    for fire in (first, second):
        local = fire.astimezone(tz)
        assert (local.weekday(), local.hour, local.minute) == (4, 9, 0)
        assert last_fire(FRIDAY_9, tz, fire) == fire  # the moment itself counts as fired
        assert last_fire(FRIDAY_9, tz, fire + timedelta(hours=30)) == fire
    assert last_fire(FRIDAY_9, tz, second - timedelta(seconds=1)) == first


def test_a_fire_time_at_the_very_moment_is_now_and_other_days_work() -> None:
    tz = ZoneInfo("Europe/Amsterdam")
    assert next_fire(FRIDAY_9, tz, utc(2026, 11, 27, 8)) == utc(2026, 11, 27, 8)
    assert next_fire(FRIDAY_9, tz, utc(2026, 11, 27, 8, 0, 1)) == utc(2026, 12, 4, 8)
    tuesday = parse_send_at("Tuesday 18:30:15")
    assert next_fire(tuesday, tz, utc(2026, 11, 23)) == utc(2026, 11, 24, 17, 30, 15)


@pytest.mark.parametrize("bad", ["friday 9am", "fri 25:00", "someday 09:00", "fri 09:00:61", ""])
def test_a_malformed_send_time_names_the_variable(bad: str) -> None:
    with pytest.raises(ConfigError, match="NEWSLETTER_SEND_AT"):
        load_settings({"NEWSLETTER_SEND_AT": bad}, Path("/nonexistent.toml"))


def test_reminders_can_be_switched_off_and_editors_are_checked() -> None:
    nothing = Path("/nonexistent.toml")
    assert load_settings({"NEWSLETTER_REMIND_AT": "off"}, nothing).remind_at is None
    assert load_settings({}, nothing).remind_at == SendAt(3, parse_send_at("thu 15:00").at)
    with pytest.raises(ConfigError, match="NEWSLETTER_EDITORS"):
        load_settings({"NEWSLETTER_EDITORS": "desk@example.org, not an address"}, nothing)
    with pytest.raises(ConfigError, match="NEWSLETTER_MISFIRE_GRACE"):
        load_settings({"NEWSLETTER_MISFIRE_GRACE": "six hours"}, nothing)


# The lease ---------------------------------------------------------------------------------


def test_one_holder_at_a_time_until_the_lease_expires(desk: Desk) -> None:
    engine, ttl = desk.engine, timedelta(seconds=60)
    take_lease(engine, "send", "host-a:1:aa", NOW, ttl)
    take_lease(engine, "send", "host-a:1:aa", NOW + timedelta(seconds=10), ttl)  # its own: renews
    with pytest.raises(LeaseHeld, match="host-a:1:aa holds the send lease"):
        take_lease(engine, "send", "host-b:2:bb", NOW + timedelta(seconds=30), ttl)
    # host-a hangs: its lease runs out 60 s after its last renewal, and host-b takes over
    take_lease(engine, "send", "host-b:2:bb", NOW + timedelta(seconds=71), ttl)
    assert not renew_lease(engine, "send", "host-a:1:aa", NOW + timedelta(seconds=72), ttl)
    assert renew_lease(engine, "send", "host-b:2:bb", NOW + timedelta(seconds=72), ttl)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(db.leases)).all()
    assert [(r.name, r.holder) for r in rows] == [("send", "host-b:2:bb")]


@pytest.mark.slow
def test_a_send_stands_by_while_another_process_holds_the_lease(
    desk: Desk, smtp_server: SMTPServer, tmp_path: Path, database_url: str
) -> None:
    seed_readers(desk.engine)
    issue = approved_issue(desk.engine)
    take_lease(desk.engine, "send", "other-host:4242:ab", datetime.now(UTC), timedelta(minutes=5))  # clock: against the live scheduler process  # fmt: skip
    result = run_send_py(tmp_path, database_url, smtp_server, "--now", "--issue", str(issue.id))
    assert result.returncode == 3, result.stderr
    assert "other-host:4242:ab holds the send lease" in result.stdout
    assert "stands by" in result.stdout
    assert smtp_server.handler.received == []


# The job's decisions, in process -------------------------------------------------------------


@pytest.fixture
def job_desk(desk: Desk, smtp_server: SMTPServer) -> Desk:
    settings = replace(
        desk.settings,
        smtp_url=smtp_server.url,
        editors=("desk@example.org", "chief@example.org"),
    )
    return Desk(settings)


def alerts_at(smtp_server: SMTPServer) -> list[tuple[list[str], str]]:
    found = []
    for message in smtp_server.handler.received:
        head = message.data.split(b"\r\n\r\n", 1)[0].decode()
        subject = " ".join(
            line.strip() for line in head.split("Subject:", 1)[1].split("\r\n") if line
        )
        subject = subject.split(" Date:")[0]
        if "Auto-Submitted: auto-generated" in head:
            found.append((message.recipients, subject))
    return found


def test_a_draft_on_the_send_day_sends_nothing_and_alerts_the_editors_once(
    job_desk: Desk, smtp_server: SMTPServer
) -> None:
    seed_readers(job_desk.engine)
    with job_desk.engine.begin() as conn:
        issue = new_issue(conn, date(2026, 11, 27), NOW)
    job = FridayJob(job_desk, lambda: NOW)
    first = job.send(date(2026, 11, 27))
    again = job.send(date(2026, 11, 27))  # cron's --once runs every few minutes
    assert (first.outcome, first.exit_code, again.outcome) == ("alerted", 1, "alerted")
    assert "editors were alerted before" in again.message
    alerts = alerts_at(smtp_server)
    assert len(smtp_server.handler.received) == 2  # one per editor, no newsletter
    assert sorted(r for rs, _ in alerts for r in rs) == ["chief@example.org", "desk@example.org"]
    assert all(f"issue {issue.id}" in s and "has no articles" in s for _, s in alerts)
    body = smtp_server.handler.received[0].data.decode()
    assert f"https://news.example.org/desk/issues/{issue.id}" in body  # where to fix it


def test_the_reminder_speaks_only_when_the_coming_issue_is_not_approved(
    job_desk: Desk, smtp_server: SMTPServer
) -> None:
    thursday = utc(2026, 11, 26, 15)
    job = FridayJob(job_desk, lambda: thursday)
    missing = job.remind(thursday)
    assert (
        missing.outcome == "alerted" and "no issue for Friday 27 November 2026" in missing.message
    )
    assert len(alerts_at(smtp_server)) == 2
    seed_readers(job_desk.engine)
    approved_issue(job_desk.engine)  # dated Friday the 27th
    with job_desk.engine.begin() as conn:  # next week's reminder: approved in time
        conn.execute(db.issues.update().values(send_date=date(2026, 12, 4)))
    settled = job.remind(utc(2026, 12, 3, 15))
    assert settled.outcome == "nothing" and "approved" in settled.message
    assert len(smtp_server.handler.received) == 2


def test_an_alert_that_cannot_be_mailed_is_tried_again_next_time(desk: Desk) -> None:
    dead = replace(desk.settings, smtp_url="smtp://127.0.0.1:9", editors=("desk@example.org",))
    job = FridayJob(Desk(dead), lambda: NOW)
    result = job.send(date(2026, 11, 27))
    assert result.outcome == "alerted" and "could not mail the editors" in result.message
    with desk.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.alerts)).scalar() == 0


def test_the_job_sends_an_approved_issue_and_then_has_nothing_to_do(
    job_desk: Desk, smtp_server: SMTPServer
) -> None:
    seed_readers(job_desk.engine)
    issue = approved_issue(job_desk.engine)
    job = FridayJob(job_desk, lambda: datetime.now(UTC))  # clock: the job runs against a live process  # fmt: skip
    sent = job.send(issue.send_date)
    assert (sent.outcome, sent.exit_code) == ("sent", 0)
    assert sent.report is not None and sent.report.sent == 3
    again = job.send(issue.send_date)
    assert (again.outcome, again.exit_code) == ("nothing", 3)
    assert len(smtp_server.handler.received) == 3
    with job_desk.engine.connect() as conn:
        assert conn.execute(sa.select(db.leases)).all() == []  # released after the send


# send.py in its own process ------------------------------------------------------------------


def send_env(database_url: str, smtp_server: SMTPServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env |= {
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_SMTP_URL": smtp_server.url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_TEMPLATES": str(ROOT / "templates"),
        "NEWSLETTER_EDITORS": EDITORS,
        "PYTHONUNBUFFERED": "1",
    }
    return env | {f"NEWSLETTER_{k.upper()}": v for k, v in extra.items()}


def run_send_py(
    tmp_path: Path, database_url: str, smtp_server: SMTPServer, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "send.py"), *args],
        cwd=tmp_path, env=send_env(database_url, smtp_server, **extra),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@dataclass
class SchedulerProcess:
    """`python send.py` as the server runs it, its log in a file."""

    process: subprocess.Popen[str]
    log: Path

    @classmethod
    def start(
        cls, tmp_path: Path, database_url: str, smtp_server: SMTPServer, name: str, **extra: str
    ) -> SchedulerProcess:
        log = tmp_path / f"{name}.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "send.py")],
                cwd=tmp_path, env=send_env(database_url, smtp_server, **extra),
                stdout=out, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        return cls(process, log)

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, words: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while words not in self.text():
            assert self.process.poll() is None, f"the scheduler ended:\n{self.text()}"
            assert time.monotonic() < deadline, f"no {words!r} in {seconds} s:\n{self.text()}"
            time.sleep(0.05)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def send_at(fire: datetime) -> str:
    """NEWSLETTER_SEND_AT for a fire time a few seconds away (UTC, the default zone)."""
    return f"{WEEKDAYS[fire.weekday()]} {fire:%H:%M:%S}"


def wait_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))  # clock: waits for a real fire time  # fmt: skip


def wait_for_messages(smtp_server: SMTPServer, count: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while len(smtp_server.handler.received) < count:
        assert time.monotonic() < deadline, f"the server got fewer than {count} messages"
        time.sleep(0.05)


def issue_for(desk: Desk, readers: int) -> int:
    """An approved issue and `readers` active readers; date it with `dated`."""
    seed_readers(
        desk.engine, tuple((f"reader{n}@example.org", f"Reader {n}") for n in range(readers))
    )
    return approved_issue(desk.engine).id


def dated(desk: Desk, issue_id: int, day: date) -> None:
    with desk.engine.begin() as conn:
        conn.execute(db.issues.update().where(db.issues.c.id == issue_id).values(send_date=day))


def due_soon(desk: Desk, issue_id: int) -> datetime:
    """A send time FIRE_AHEAD seconds from now, with the issue dated that day; returns it."""
    fire = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=FIRE_AHEAD)  # clock: APScheduler fires on the system clock  # fmt: skip
    dated(desk, issue_id, fire.date())
    return fire


def newsletter_recipients(smtp_server: SMTPServer) -> list[str]:
    return [
        r
        for m in smtp_server.handler.received
        if b"Auto-Submitted: auto-generated" not in m.data
        for r in m.recipients
    ]


@pytest.mark.slow
def test_the_scheduler_sends_at_its_time_once_and_a_second_scheduler_sends_nothing(
    desk: Desk, smtp_server: SMTPServer, tmp_path: Path, database_url: str
) -> None:
    issue_id = issue_for(desk, readers=300)
    fire = due_soon(desk, issue_id)
    first = SchedulerProcess.start(
        tmp_path, database_url, smtp_server, "first", send_at=send_at(fire)
    )
    second = SchedulerProcess.start(
        tmp_path, database_url, smtp_server, "second", send_at=send_at(fire)
    )
    try:
        for scheduler in (first, second):
            scheduler.wait_for(f"next send: {fire:%a %Y-%m-%d %H:%M:%S} UTC")
        wait_for_messages(smtp_server, 300)
        logs = {s.log.name: s for s in (first, second)}
        deadline = time.monotonic() + 30
        while not any(
            f"issue {issue_id} for {fire.date()} is sent" in s.text() for s in logs.values()
        ):
            assert time.monotonic() < deadline, "no scheduler reported the issue sent"
            time.sleep(0.05)
        time.sleep(1)  # a second fire, if any, would be now
    finally:
        codes = [first.stop(), second.stop()]
    assert codes == [0, 0], first.text() + second.text()
    recipients = newsletter_recipients(smtp_server)
    assert sorted(recipients) == sorted(f"reader{n}@example.org" for n in range(300))
    texts = [first.text(), second.text()]
    assert sum("is sent" in t for t in texts) == 1
    other = texts[1] if "is sent" in texts[0] else texts[0]
    # it stood by while the other sent, then found nothing to do; or it never fired
    assert ("standing by" in other and "was sent already" in other) or "send for" not in other
    for text in texts:
        if "send for" in text:  # one that fired moved the job to next week and says so
            assert "next send: " + f"{fire + timedelta(days=7):%a %Y-%m-%d %H:%M:%S}" in text
        assert "scheduler stopped" in text
    with desk.engine.connect() as conn:
        workers = conn.execute(sa.select(db.deliveries.c.worker).distinct()).scalars().all()
        status = conn.execute(sa.select(db.issues.c.status)).scalar()
    assert len(workers) == 1 and status == "sent"


def down_at_the_send_time(
    tmp_path: Path, database_url: str, smtp_server: SMTPServer, fire: datetime, **extra: str
) -> None:
    """A scheduler ran before `fire` and was stopped, so the job store holds that run."""
    early = SchedulerProcess.start(
        tmp_path, database_url, smtp_server, "early", send_at=send_at(fire), **extra
    )
    early.wait_for("scheduler started")
    assert early.stop() == 0
    assert "send for" not in early.text()


@pytest.mark.slow
def test_a_scheduler_that_starts_late_within_the_grace_still_sends(
    desk: Desk, smtp_server: SMTPServer, tmp_path: Path, database_url: str
) -> None:
    issue_id = issue_for(desk, readers=5)
    fire = due_soon(desk, issue_id)
    down_at_the_send_time(tmp_path, database_url, smtp_server, fire)
    wait_until(fire + timedelta(seconds=2))
    late = SchedulerProcess.start(
        tmp_path, database_url, smtp_server, "late", send_at=send_at(fire)
    )
    try:
        late.wait_for("missed while no scheduler ran: handled now")
        wait_for_messages(smtp_server, 5)
        late.wait_for("is sent")
    finally:
        assert late.stop() == 0
    assert len(newsletter_recipients(smtp_server)) == 5
    assert alerts_at(smtp_server) == []


@pytest.mark.slow
def test_a_scheduler_that_starts_after_the_grace_sends_nothing_and_alerts(
    desk: Desk, smtp_server: SMTPServer, tmp_path: Path, database_url: str
) -> None:
    issue_id = issue_for(desk, readers=5)
    fire = due_soon(desk, issue_id)
    down_at_the_send_time(tmp_path, database_url, smtp_server, fire, misfire_grace="1s")
    wait_until(fire + timedelta(seconds=3))
    late = SchedulerProcess.start(
        tmp_path, database_url, smtp_server, "late", send_at=send_at(fire), misfire_grace="1s"
    )
    try:
        wait_for_messages(smtp_server, 2)
        late.wait_for("send missed")
    finally:
        assert late.stop() == 0
    assert newsletter_recipients(smtp_server) == []
    alerts = alerts_at(smtp_server)
    assert sorted(r for rs, _ in alerts for r in rs) == ["chief@example.org", "desk@example.org"]
    assert all("Send missed" in subject for _, subject in alerts)
    assert (
        f"python send.py --now --issue {issue_id}" in smtp_server.handler.received[0].data.decode()
    )
    with desk.engine.connect() as conn:
        assert conn.execute(sa.select(db.issues.c.status)).scalar() == "approved"


@pytest.mark.slow
def test_no_approved_issue_at_the_send_time_means_no_newsletter_and_one_alert(
    desk: Desk, smtp_server: SMTPServer, tmp_path: Path, database_url: str
) -> None:
    fire = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=FIRE_AHEAD)  # clock: APScheduler fires on the system clock  # fmt: skip
    seed_readers(desk.engine)
    with desk.engine.begin() as conn:  # a draft with articles, never approved
        issue = new_issue(conn, fire.date(), NOW)
    scheduler = SchedulerProcess.start(
        tmp_path,
        database_url,
        smtp_server,
        "scheduler",
        send_at=send_at(fire),
        editors="desk@example.org",
    )
    try:
        wait_for_messages(smtp_server, 1)
        scheduler.wait_for("alerted")
        time.sleep(0.5)
    finally:
        assert scheduler.stop() == 0
    assert newsletter_recipients(smtp_server) == []
    assert [(rs, s.split(": ", 1)[0]) for rs, s in alerts_at(smtp_server)] == [
        (["desk@example.org"], "[The Weekly] Nothing sent")
    ]
    assert f"issue {issue.id}" in alerts_at(smtp_server)[0][1]


def a_long_send(
    desk: Desk, smtp_server: SMTPServer, tmp_path: Path, name: str
) -> tuple[int, datetime, SchedulerProcess]:
    """A scheduler sending 1,000 readers at 300 a second, a hundred of them through."""
    issue_id = issue_for(desk, readers=1000)
    fire = due_soon(desk, issue_id)
    scheduler = SchedulerProcess.start(
        tmp_path, desk.settings.database_url, smtp_server, name, send_at=send_at(fire), rate="300"
    )
    try:
        wait_for_messages(smtp_server, 100)
    except BaseException:
        scheduler.process.kill()
        raise
    return issue_id, fire, scheduler


@pytest.mark.slow
def test_sigterm_during_a_scheduled_send_stops_it_cleanly_and_now_resumes(
    desk: Desk, smtp_server: SMTPServer, tmp_path: Path, database_url: str
) -> None:
    issue_id, _fire, scheduler = a_long_send(desk, smtp_server, tmp_path, "scheduler")
    code = scheduler.stop()
    assert code == 0, scheduler.text()
    assert "SIGTERM: stopping" in scheduler.text() and "stopped on request" in scheduler.text()
    taken = len(newsletter_recipients(smtp_server))
    assert 100 <= taken < 1000
    with desk.engine.connect() as conn:
        left = conn.execute(
            sa.select(sa.func.count()).where(db.deliveries.c.status.in_(("queued", "claimed")))
        ).scalar()
        assert left == 0 and conn.execute(sa.select(db.leases)).all() == []
    resumed = run_send_py(tmp_path, database_url, smtp_server, "--now", "--issue", str(issue_id))
    assert resumed.returncode == 0, resumed.stderr
    recipients = newsletter_recipients(smtp_server)
    assert sorted(recipients) == sorted(f"reader{n}@example.org" for n in range(1000))


@pytest.mark.slow
def test_a_scheduler_restarted_after_a_crash_mid_send_resumes_it(
    desk: Desk, smtp_server: SMTPServer, tmp_path: Path, database_url: str
) -> None:
    issue_id, fire, crashing = a_long_send(desk, smtp_server, tmp_path, "crashing")
    crashing.process.kill()  # SIGKILL: no clean stop, its lease and claims stay behind
    crashing.process.wait()
    restarted = SchedulerProcess.start(
        tmp_path, database_url, smtp_server, "restarted", send_at=send_at(fire)
    )
    try:
        restarted.wait_for(f"issue {issue_id} for {fire.date()} is sending: resuming its send")
        restarted.wait_for("readers uncertain after a crash", seconds=120)
    finally:
        assert restarted.stop() == 0
    with desk.engine.connect() as conn:
        uncertain = set(
            conn.execute(
                sa.select(db.subscribers.c.email)
                .join(db.deliveries, db.deliveries.c.subscriber_id == db.subscribers.c.id)
                .where(db.deliveries.c.status == "uncertain")
            ).scalars()
        )
    assert 1 <= len(uncertain) <= 4  # at most one in flight per connection
    got = Counter(newsletter_recipients(smtp_server))
    everyone = {f"reader{n}@example.org" for n in range(1000)}
    assert {r for r in everyone - uncertain if got[r] != 1} == set()
    assert all(got[r] <= 1 for r in uncertain)


# One-shot modes and exit codes ----------------------------------------------------------------


# a week of mornings, Monday 30 November to Sunday 6 December 2026: the send day is the 4th
WEEK = [datetime(2026, 11, 30, 10, 0, tzinfo=UTC) + timedelta(days=n) for n in range(7)]


@pytest.mark.slow
def test_send_now_sends_this_send_days_approved_issue_once(
    desk: Desk, smtp_server: SMTPServer, tmp_path: Path, database_url: str
) -> None:
    issue_id = issue_for(desk, readers=3)
    dated(desk, issue_id, date(2026, 12, 4))
    tuesday = WEEK[1].isoformat()
    first = run_send_py(tmp_path, database_url, smtp_server, "--now", clock=tuesday)
    assert first.returncode == 0, first.stderr
    assert "sent now 3" in first.stdout
    second = run_send_py(tmp_path, database_url, smtp_server, "--now", clock=tuesday)
    assert second.returncode == 3 and "was sent already" in second.stdout  # nothing to do
    assert len(smtp_server.handler.received) == 3
    with desk.engine.connect() as conn:
        assert conn.execute(sa.select(db.issues.c.status)).scalar() == "sent"


@pytest.mark.slow
@pytest.mark.parametrize("morning", WEEK, ids=lambda d: f"{d:%a}")
def test_send_now_without_an_issue_says_so_and_fails_on_any_day(
    desk: Desk, smtp_server: SMTPServer, tmp_path: Path, database_url: str, morning: datetime
) -> None:
    result = run_send_py(
        tmp_path, database_url, smtp_server, "--now", editors="", clock=morning.isoformat()
    )
    assert result.returncode == 1
    # Saturday and Sunday look ahead to the next Friday
    friday = date(2026, 12, 4) if morning.weekday() <= 4 else date(2026, 12, 11)
    assert f"there is no issue for {friday:%A %d %B %Y}" in result.stdout
    # the editors hear of it only on the send day itself
    assert ("NEWSLETTER_EDITORS is unset" in result.stdout) == (morning.weekday() == 4)
    assert smtp_server.handler.received == []


@pytest.mark.slow
def test_the_long_lived_scheduler_refuses_a_set_clock(
    desk: Desk, tmp_path: Path, database_url: str, smtp_server: SMTPServer
) -> None:
    result = run_send_py(tmp_path, database_url, smtp_server, clock=WEEK[4].isoformat())
    assert result.returncode == 2
    assert "NEWSLETTER_CLOCK: goes with --now or --once" in result.stderr


def test_a_malformed_clock_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="NEWSLETTER_CLOCK: '2026-12-04 09:00' is not a time"):
        load_settings({"NEWSLETTER_CLOCK": "2026-12-04 09:00"}, Path("/nonexistent.toml"))


@pytest.mark.slow
def test_once_sends_only_when_due_and_exit_codes_tell_outcomes_apart(
    desk: Desk, smtp_server: SMTPServer, tmp_path: Path, database_url: str
) -> None:
    issue_id = issue_for(desk, readers=4)
    now = datetime.now(UTC)  # clock: the process under test reads the system clock
    due = send_at(now - timedelta(minutes=5))  # five minutes ago: inside the grace
    dated(desk, issue_id, (now - timedelta(minutes=5)).date())
    not_due = run_send_py(
        tmp_path, database_url, smtp_server, "--once", send_at=send_at(now + timedelta(hours=2))
    )
    assert (not_due.returncode, not_due.stdout.split(":")[0]) == (3, "not-due")
    dry = run_send_py(tmp_path, database_url, smtp_server, "--once", "--dry-run", send_at=due)
    assert dry.returncode == 0 and "would go to 4 readers" in dry.stdout
    assert smtp_server.handler.received == []
    sent = run_send_py(tmp_path, database_url, smtp_server, "--once", send_at=due)
    assert sent.returncode == 0, sent.stderr
    again = run_send_py(tmp_path, database_url, smtp_server, "--once", send_at=due)
    assert again.returncode == 3 and "sent already" in again.stdout
    assert len(newsletter_recipients(smtp_server)) == 4


@pytest.mark.slow
def test_bad_usage_and_bad_settings_exit_2_with_the_reason(
    desk: Desk, smtp_server: SMTPServer, tmp_path: Path, database_url: str
) -> None:
    both = run_send_py(tmp_path, database_url, smtp_server, "--now", "--once")
    assert both.returncode == 2 and "exclude each other" in both.stderr
    bad = run_send_py(tmp_path, database_url, smtp_server, "--once", send_at="friday at nine")
    assert bad.returncode == 2 and "NEWSLETTER_SEND_AT" in bad.stderr
    unknown = run_send_py(tmp_path, database_url, smtp_server, "--now", "--issue", "99")
    assert unknown.returncode == 1 and "99" in unknown.stdout


def test_newsletter_schedule_is_send_py(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from newsletter.cli import cli

    result = CliRunner().invoke(cli, ["schedule", "--help"])
    assert result.exit_code == 0 and "--once" in result.output and "exit codes" in result.output


def test_a_paused_send_does_not_stop_the_scheduler_that_ran_it(desk: Desk) -> None:
    """A relay that refuses everything pauses that send; the scheduler's next jobs still run."""
    from newsletter.delivery.workers import WorkerStop

    seed_readers(desk.engine)
    issue = approved_issue(desk.engine)
    dead = Desk(replace(desk.settings, smtp_url="smtp://127.0.0.1:9", pause_after=2))
    stops = WorkerStop()
    result = FridayJob(dead, lambda: datetime.now(UTC), stops).send(issue.send_date)  # clock: the lease is taken in real time  # fmt: skip
    assert (result.outcome, result.exit_code) == ("paused", 5)
    assert not stops.asked.is_set()
    with desk.engine.connect() as conn:
        assert conn.execute(sa.select(db.issues.c.status)).scalar() == "sending"


def test_an_alert_that_could_not_be_mailed_for_any_reason_is_tried_again(desk: Desk) -> None:
    from newsletter.schedule.alerts import Alert, alert_editors

    broken = replace(desk.settings, smtp_url="smtp://", editors=("desk@example.org",))
    line = alert_editors(Alert("reminder", date(2026, 11, 27), "Reminder", "Body"),
                         desk.engine, broken, Desk(broken).transport, NOW)  # fmt: skip
    assert "could not mail the editors" in line and "NEWSLETTER_SMTP_URL" in line
    with desk.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.alerts)).scalar() == 0


def test_a_run_before_the_send_day_does_not_use_up_its_alert(
    job_desk: Desk, smtp_server: SMTPServer
) -> None:
    with job_desk.engine.begin() as conn:
        new_issue(conn, date(2026, 11, 27), NOW)
    early = FridayJob(job_desk, lambda: NOW).send(date(2026, 11, 27), alert=False)
    assert early.outcome == "failed" and smtp_server.handler.received == []
    on_the_day = FridayJob(job_desk, lambda: NOW).send(date(2026, 11, 27))
    assert on_the_day.outcome == "alerted" and len(smtp_server.handler.received) == 2


def test_a_job_stored_before_the_move_is_restored_with_its_next_run_time(
    database_url: str,
) -> None:
    """A desk whose scheduler stored the Friday job while it lived in newsletter.scheduling
    upgrades (migration 0010) to a job APScheduler restores, its next run time kept: a
    Friday missed across the upgrade is still found."""
    import pickle

    from apscheduler.job import Job
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.blocking import BlockingScheduler

    from newsletter.schedule.job import scheduled_send
    from newsletter.schedule.when import cron_trigger

    engine = create_db_engine(database_url)
    upgrade_database(engine, to="0009")
    planned = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    job = Job(BlockingScheduler(timezone=UTC), id="friday-send", func=scheduled_send,
              trigger=cron_trigger(SendAt(4, NOW.time()), ZoneInfo("UTC")), executor="default",
              args=(), kwargs={}, name="send", misfire_grace_time=21600, coalesce=True,
              max_instances=1, next_run_time=planned)  # fmt: skip
    state = job.__getstate__()
    assert state["func"] == "newsletter.schedule.job:scheduled_send"
    state["func"] = "newsletter.scheduling:scheduled_send"  # as the old module stored it
    with engine.begin() as conn:
        conn.execute(db.scheduler_jobs.insert().values(
            id="friday-send", next_run_time=planned.timestamp(),
            job_state=pickle.dumps(state, pickle.HIGHEST_PROTOCOL)))  # fmt: skip
        conn.execute(db.scheduler_jobs.insert().values(
            id="garbage", next_run_time=None, job_state=b"not a pickle"))  # fmt: skip
    upgrade_database(engine)
    store = SQLAlchemyJobStore(engine=engine, tablename="scheduler_jobs")
    store.start(BlockingScheduler(timezone=UTC), "default")
    restored = store.lookup_job("friday-send")
    assert restored is not None and restored.func is scheduled_send
    assert restored.next_run_time == planned
    with engine.connect() as conn:  # what no scheduler could read is left as it was
        left = conn.execute(sa.select(db.scheduler_jobs.c.job_state).where(
            db.scheduler_jobs.c.id == "garbage")).scalar_one()  # fmt: skip
    assert left == b"not a pickle"
    engine.dispose()
