"""Several newsletters on one desk: each has its readers (one address may subscribe to
several, each with its own consent, confirmation and unsubscribe), its issues, its
schedule and its sender. A desk made by the version before them migrates into one
newsletter with nothing lost. Browser test at the end, in Chromium."""

from __future__ import annotations

import email.policy
import re
import shutil
import sqlite3
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner

from newsletter.app import Desk
from newsletter.cli import cli
from newsletter.curation.articles import import_sources
from newsletter.curation.issues import approve, new_issue, pick, set_fields
from newsletter.delivery.notices import send_notices
from newsletter.delivery.send import send_issue
from newsletter.errors import InputError, NotFound, StateError
from newsletter.publications import add_newsletter, choose, list_newsletters, view
from newsletter.readers.consent import Evidence
from newsletter.readers.optin import Limits, SignUp, confirm, sign_up
from newsletter.readers.subscribers import get_subscriber, unsubscribe
from newsletter.schedule.job import REMIND_JOB, SEND_JOB
from newsletter.schedule.scheduler import FridayScheduler
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.store.engine import create_db_engine, upgrade_database
from newsletter.transport.base import opened

from .browser import LiveServer
from .conftest import FEEDS, NOW, SECRET, SMTPServer

FIXTURE = Path(__file__).parent / "data" / "desk-0016.sqlite"  # made by `newsletter demo`
DAILY = {
    "name": "The Daily Briefing",
    "from_addr": "The Daily <daily@example.org>",
    "list_id": "daily.example.org",
    "schedule": "daily 07:00 Europe/Moscow",
    "appeal": False,
}


# The migration ------------------------------------------------------------------------


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but Alembic's, as sqlite3 reads them (the columns a
    migration adds are left out: what was there must be there unchanged)."""
    with sqlite3.connect(path) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        found = {}
        for name in names:
            if name == "alembic_version":
                continue
            columns = [c[1] for c in conn.execute(f"PRAGMA table_info({name})")]
            kept = [c for c in columns if c != "newsletter_id"]
            found[name] = sorted(
                conn.execute(f"SELECT {', '.join(kept)} FROM {name}").fetchall(), key=repr
            )
    return found


def test_a_desk_of_the_version_before_migrates_into_one_newsletter_with_nothing_lost(
    tmp_path: Path,
) -> None:
    """tests/data/desk-0016.sqlite was made by the desk as it was before newsletters (at
    migration 0016): `newsletter init`, `demo` (an issue sent to three readers), a sign-up
    left pending, an unsubscribe and a second issue in draft."""
    path = tmp_path / "desk.db"
    shutil.copyfile(FIXTURE, path)
    before = _rows(path)
    assert len(before["subscribers"]) == 4 and len(before["deliveries"]) == 3
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade_database(engine)
    after = _rows(path)
    assert {k: v for k, v in after.items() if k != "newsletters"} == before
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), db.metadata) == []
        assert MigrationContext.configure(conn).get_current_revision() == "0017"
        newsletters = list_newsletters(conn)
        assert [(n.id, n.slug, n.name, n.schedule) for n in newsletters] == [
            (1, "main", None, None)
        ]
        for table in (db.issues, db.subscribers):
            assert set(conn.execute(sa.select(table.c.newsletter_id)).scalars()) == {1}
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    # the newsletter is named by NEWSLETTER_SITE_NAME and sends as the settings say
    settings = Settings(database_url=f"sqlite:///{path}", site_name="The Weekly")
    assert view(settings, newsletters[0]).site_name == "The Weekly"
    assert view(settings, newsletters[0]).send_at == settings.send_at
    # and the new shape holds: a second newsletter's issue on a day the first has one,
    # and the first's readers may subscribe to it too
    with engine.begin() as conn:
        daily = add_newsletter(conn, "daily", NOW, **DAILY)
        taken = conn.execute(sa.select(db.issues.c.send_date)).scalars().first()
        assert new_issue(conn, taken, NOW, daily.id).newsletter_id == daily.id
        with pytest.raises(StateError):
            new_issue(conn, taken, NOW, 1)
    engine.dispose()


def test_an_upgrade_that_fails_half_way_leaves_the_desk_as_it_was(tmp_path: Path) -> None:
    """On SQLite too the migrations run in one transaction, their DDL included: one that
    fails after 0017 made its table (here at the copy of `subscribers`, whose scratch
    table's name is taken) takes everything back, and the upgrade runs once it is fixed."""
    path = tmp_path / "desk.db"
    shutil.copyfile(FIXTURE, path)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE _alembic_tmp_subscribers (x INTEGER)")
    before = _rows(path)
    engine = create_db_engine(f"sqlite:///{path}")
    with pytest.raises(sa.exc.OperationalError, match="_alembic_tmp_subscribers"):
        upgrade_database(engine)
    assert _rows(path) == before  # no newsletters table, issues as they were
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0016"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE _alembic_tmp_subscribers")
    upgrade_database(engine)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0017"
    engine.dispose()


def test_the_migration_refuses_nothing_on_postgresql_and_sqlite_alike(database_url: str) -> None:
    """Replayed from the first migration on both databases, with rows in the tables that
    0017 copies, it keeps them and their references."""
    engine = create_db_engine(database_url)
    upgrade_database(engine, replay=True, to="0016")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO issues (id, send_date, status, created_at, updated_at) "
            "VALUES (7, '2026-12-04', 'sent', '2026-12-01 09:00:00', '2026-12-01 09:00:00')"
        ))  # fmt: skip
        conn.execute(sa.text(
            "INSERT INTO subscribers (id, email, status, created_at, updated_at) "
            "VALUES (9, 'a@example.org', 'active', '2026-12-01 09:00:00', '2026-12-01 09:00:00')"
        ))  # fmt: skip
        conn.execute(sa.text(
            "INSERT INTO deliveries (issue_id, subscriber_id, status) VALUES (7, 9, 'sent')"
        ))  # fmt: skip
    upgrade_database(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(db.issues.c.id, db.issues.c.newsletter_id)).all() == [(7, 1)]
        assert conn.execute(sa.select(db.subscribers.c.newsletter_id)).scalar() == 1
        assert conn.execute(sa.select(db.deliveries.c.status)).scalar() == "sent"
        assert compare_metadata(MigrationContext.configure(conn), db.metadata) == []
    engine.dispose()


# Newsletters, their readers and their sends ---------------------------------------------


@dataclass
class Two:
    desk: Desk
    daily: int  # the second newsletter's id; the first's is 1


@pytest.fixture
def two(smtp_settings: Settings) -> Two:
    desk = Desk(replace(smtp_settings, editors=("desk@example.org",)))
    from newsletter.app import init_desk

    init_desk(desk, NOW)
    with desk.engine.begin() as conn:
        daily = add_newsletter(conn, "daily", NOW, **DAILY)
    import_sources(desk.engine, [str(FEEDS / "liga-ru-2021.xml")], NOW)
    return Two(desk, daily.id)


def subscribed(desk: Desk, email: str, newsletter_id: int) -> int:
    """A sign-up to the newsletter and its confirmation click; the subscription's id."""
    with desk.engine.begin() as conn:
        mail = sign_up(conn, SignUp(email, True, "", Evidence(source="form"), newsletter_id),
                       Limits(), SECRET, NOW)  # fmt: skip
        assert mail is not None
        confirm(conn, mail.token, Evidence(source="click"), (SECRET,), timedelta(days=7), NOW)
    return mail.subscriber_id


def approved_for(desk: Desk, newsletter_id: int, day: date, subject: str) -> int:
    with desk.engine.begin() as conn:
        issue = new_issue(conn, day, NOW, newsletter_id)
        articles = conn.execute(sa.select(db.articles.c.id).limit(3)).scalars().all()
        pick(conn, issue.id, list(articles), NOW)
        set_fields(conn, issue.id, NOW, subject=subject, preheader="Three stories.")
        return approve(conn, issue.id, NOW).id


def messages(smtp_server: SMTPServer) -> list[Message]:
    return [
        message_from_bytes(m.data, policy=email.policy.default)
        for m in smtp_server.handler.received
    ]


def newsletter_mail(smtp_server: SMTPServer) -> dict[str, set[str]]:
    """The issues received, by From: to whom each sender's newsletter went."""
    sent: dict[str, set[str]] = {}
    for message in messages(smtp_server):
        if message["List-Unsubscribe"] and "Auto-Submitted" not in message:
            sent.setdefault(str(message["From"]), set()).add(str(message["To"]))
    return sent


def test_an_address_holds_a_subscription_to_each_newsletter_with_its_own_consent(
    two: Two, smtp_server: SMTPServer
) -> None:
    desk = two.desk
    weekly_id = subscribed(desk, "both@example.org", 1)
    daily_id = subscribed(desk, "both@example.org", two.daily)
    subscribed(desk, "weekly@example.org", 1)
    subscribed(desk, "daily@example.org", two.daily)
    assert weekly_id != daily_id
    with desk.engine.connect() as conn:
        events = conn.execute(
            sa.select(db.consent_events.c.subscriber_id, db.consent_events.c.kind)
            .where(db.consent_events.c.subscriber_id.in_((weekly_id, daily_id)))
            .order_by(db.consent_events.c.id)
        ).all()
        with pytest.raises(InputError, match="several newsletters"):
            get_subscriber(conn, "both@example.org")
        assert get_subscriber(conn, "both@example.org", two.daily).id == daily_id
    assert events == [(weekly_id, "given"), (weekly_id, "confirmed"), (daily_id, "given"),
                      (daily_id, "confirmed")]  # fmt: skip
    with desk.engine.begin() as conn:
        unsubscribe(conn, daily_id, Evidence(source="one-click"), NOW)
    weekly = approved_for(desk, 1, date(2026, 11, 27), "The week")
    daily = approved_for(desk, two.daily, date(2026, 11, 24), "The day")
    for issue_id in (weekly, daily):
        report = send_issue(issue_id, desk.engine, desk.settings, desk.transports(), lambda: NOW)
        assert report.status == "sent"
    assert newsletter_mail(smtp_server) == {
        "Еженедельник <weekly@example.org>": {"both@example.org", "weekly@example.org"},
        "The Daily <daily@example.org>": {"daily@example.org"},
    }
    daily_copy = next(m for m in messages(smtp_server) if "daily@" in str(m["From"]))
    assert daily_copy["List-Id"] == "The Daily Briefing <daily.example.org>"
    weekly_copy = next(m for m in messages(smtp_server) if "weekly@" in str(m["From"]))
    appeal = "Support independent journalism"  # the appeal's heading
    assert appeal in weekly_copy.get_body(("html",)).get_content()
    assert appeal not in daily_copy.get_body(("html",)).get_content()  # the daily: none


def test_a_newsletter_with_templates_of_its_own_is_rendered_from_them(
    two: Two, tmp_path: Path
) -> None:
    from newsletter.compose.copies import preview_copy
    from newsletter.publications import change_newsletter, get_newsletter

    desk = two.desk
    own = tmp_path / "daily-templates"
    shutil.copytree(desk.settings.templates, own)
    page = own / "issue.html"
    page.write_text(page.read_text().replace("<body", "<body data-daily-design", 1))
    with desk.engine.begin() as conn:
        change_newsletter(conn, get_newsletter(conn, two.daily), templates=str(own))
    daily = approved_for(desk, two.daily, date(2026, 11, 24), "The day")
    weekly = approved_for(desk, 1, date(2026, 11, 27), "The week")
    assert "data-daily-design" in preview_copy(desk.engine, desk.settings, daily, None, NOW).html
    assert "data-daily-design" not in preview_copy(
        desk.engine, desk.settings, weekly, None, NOW).html  # fmt: skip


def test_notices_go_out_in_the_name_of_the_newsletter_signed_up_to(
    two: Two, smtp_server: SMTPServer
) -> None:
    desk = two.desk
    with desk.engine.begin() as conn:
        mails = [
            sign_up(
                conn,
                SignUp(f"r{n}@example.org", True, "", Evidence(source="form"), nid),
                Limits(),
                SECRET,
                NOW,
            )
            for n, nid in enumerate((1, two.daily, 1))
        ]
    with opened(desk.transport) as transport:
        report = send_notices([m for m in mails if m], desk.engine, desk.settings, transport, NOW)
    assert report.sent == 3 and report.failures == ()
    senders = {str(m["To"]): str(m["From"]) for m in messages(smtp_server)}
    assert senders == {
        "r0@example.org": "Еженедельник <weekly@example.org>",
        "r1@example.org": "The Daily <daily@example.org>",
        "r2@example.org": "Еженедельник <weekly@example.org>",
    }
    daily = next(m for m in messages(smtp_server) if str(m["To"]) == "r1@example.org")
    text = " ".join(daily.get_body(("plain",)).get_content().split())
    assert "asked to receive The Daily Briefing at r1@example.org. It arrives every day" in text
    weekly = next(m for m in messages(smtp_server) if str(m["To"]) == "r0@example.org")
    assert "Our weekly newsletter arrives every Friday" in " ".join(
        weekly.get_body(("plain",)).get_content().split())  # fmt: skip


def test_a_hard_bounce_or_a_complaint_ends_every_subscription_of_the_address(two: Two) -> None:
    from newsletter.readers.subscribers import mark_bounced, record_complaint

    desk = two.desk
    a1, a2 = subscribed(desk, "a@example.org", 1), subscribed(desk, "a@example.org", two.daily)
    b1, b2 = subscribed(desk, "b@example.org", 1), subscribed(desk, "b@example.org", two.daily)
    with desk.engine.begin() as conn:
        assert mark_bounced(conn, a1, "550 5.1.1 no such user", "bounce", NOW)
        assert record_complaint(conn, b2, "abuse report", NOW)
        status = dict(conn.execute(sa.select(db.subscribers.c.id, db.subscribers.c.status)).all())
    assert (status[a1], status[a2], status[b1], status[b2]) == (
        "bounced", "bounced", "complained", "complained")  # fmt: skip
    # a new subscription's confirmation bounced: the address's others bounce with it
    c1 = subscribed(desk, "c@example.org", 1)
    with desk.engine.begin() as conn:
        mail = sign_up(conn, SignUp("c@example.org", True, "", Evidence(source="form"),
                                    two.daily), Limits(), SECRET, NOW)  # fmt: skip
        assert mail is not None
        assert mark_bounced(conn, mail.subscriber_id, "550 5.1.1 gone", "bounce", NOW)
        status = dict(conn.execute(sa.select(db.subscribers.c.id, db.subscribers.c.status)).all())
    assert (status[c1], status[mail.subscriber_id]) == ("bounced", "pending")


def test_an_erasure_or_an_export_covers_every_newsletter_of_the_address(two: Two) -> None:
    from newsletter.readers.access import export_subscriber, forget

    desk = two.desk
    ids = subscribed(desk, "p@example.org", 1), subscribed(desk, "p@example.org", two.daily)
    with desk.engine.begin() as conn:
        exported = export_subscriber(conn, "p@example.org")
        forget(conn, "p@example.org", NOW)
        left = conn.execute(
            sa.select(db.subscribers.c.email, db.subscribers.c.status).where(
                db.subscribers.c.id.in_(ids))).all()  # fmt: skip
    assert [s["newsletter"] for s in exported["subscriptions"]] == ["main", "daily"]
    assert {e["subscriber_id"] for e in exported["consent_events"]} == set(ids)
    assert left == [(None, "erased"), (None, "erased")]


def test_a_newsletters_values_are_checked_and_named(two: Two) -> None:
    with two.desk.engine.begin() as conn:
        for field, value, message in (
            ("slug", "Daily News", "--slug: 'Daily News' is not a slug"),
            ("schedule", "every friday", "--schedule: 'every friday' is not a weekday"),
            ("schedule", "fri 09:00 Mars/Olympus", "--schedule: unknown IANA time zone"),
            ("from_addr", "not an address", "--from: "),
            ("name", "two\nlines", "--name: "),
            ("templates", "/nonexistent", "--templates: '/nonexistent' is not a templates folder"),
        ):
            values = {field: value} if field != "slug" else {}
            with pytest.raises(InputError, match=message.replace("(", r"\(")):
                add_newsletter(conn, value if field == "slug" else "other", NOW, **values)
        with pytest.raises(StateError, match="there is a newsletter 'daily' already"):
            add_newsletter(conn, "daily", NOW)
        with pytest.raises(NotFound, match=r"no newsletter 'weekly' \(there are: main, daily\)"):
            choose(conn, "weekly")
        with pytest.raises(InputError, match=r"several newsletters: name one \(main, daily\)"):
            choose(conn, None)
        assert list_newsletters(conn)[1].slug == "daily"  # nothing half-made


def test_the_cli_takes_the_newsletter_by_slug_where_there_are_several(
    smtp_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = {
        "NEWSLETTER_DATABASE_URL": smtp_settings.database_url,
        "NEWSLETTER_PRIVACY_DIR": str(smtp_settings.privacy_dir),
        "NEWSLETTER_TEMPLATES": str(smtp_settings.templates),
        "NEWSLETTER_OUTBOX": str(tmp_path / "outbox"),
        "NEWSLETTER_CLOCK": "2026-12-01T10:00:00+00:00",  # a Tuesday
        "NEWSLETTER_CONFIG": str(tmp_path / "none.toml"),
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    assert run("init").exit_code == 0
    one = run("issue", "new")  # one newsletter: as it always was
    assert one.exit_code == 0, one.output
    added = run("newsletters", "add", "daily", "--name", "The Daily Briefing",
                "--schedule", "daily 07:00 Europe/Moscow")  # fmt: skip
    assert added.exit_code == 0 and "daily 07:00 Europe/Moscow" in added.output
    refused = run("issue", "new")
    assert refused.exit_code != 0
    assert "several newsletters: name one (main, daily)" in refused.output
    daily = run("issue", "new", "--newsletter", "daily", "--json")
    assert daily.exit_code == 0, daily.output
    assert '"send_date": "2026-12-01"' in daily.output and '"appeal": true' in daily.output
    listed = run("issue", "list", "--newsletter", "daily")
    assert listed.output.count("\n") == 1 and "2026-12-01" in listed.output
    unknown = run("issue", "new", "--newsletter", "weekly")
    assert unknown.exit_code != 0 and "no newsletter 'weekly'" in unknown.output
    renamed = run("newsletters", "set", "main", "--slug", "weekly", "--schedule", "")
    assert renamed.exit_code == 0 and "weekly" in renamed.output
    assert "fri 09:00 UTC" in renamed.output  # unset: NEWSLETTER_SEND_AT again


# Two schedules under a faked clock -------------------------------------------------------


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_two_schedules_fire_independently_under_a_faked_clock(
    two: Two, smtp_server: SMTPServer
) -> None:
    """A week walked through on a faked clock: each job fires at its own trigger's times
    (as APScheduler computes them), and each send goes to its own newsletter's readers."""
    desk = two.desk
    subscribed(desk, "both@example.org", 1)
    subscribed(desk, "both@example.org", two.daily)
    subscribed(desk, "weekly@example.org", 1)
    subscribed(desk, "daily@example.org", two.daily)
    weekly = approved_for(desk, 1, date(2026, 12, 4), "The week")
    daily = approved_for(desk, two.daily, date(2026, 12, 2), "Wednesday")
    start = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # a Monday
    clock = FakeClock(start)
    scheduler = FridayScheduler(desk, clock)
    try:
        planned = scheduler.install(start)
        wanted = scheduler.wanted()
        assert set(wanted) == {
            SEND_JOB,
            REMIND_JOB,
            f"{SEND_JOB}:{two.daily}",
        }  # daily: no reminder
        due = {job_id: planned[name] for job_id, (_f, _t, name, _n) in wanted.items()}
        fired = []
        while min(due.values()) < start + timedelta(days=5):
            job_id = min(due, key=lambda j: due[j])
            clock.now = due[job_id]
            _func, trigger, name, newsletter_id = wanted[job_id]
            result = scheduler.fire(job_id.partition(":")[0], newsletter_id)
            assert result is not None
            fired.append((name, f"{clock.now.astimezone(UTC):%a %H:%M}", result.outcome))
            due[job_id] = trigger.get_next_fire_time(clock.now, clock.now + timedelta(seconds=1))
    finally:
        scheduler.store.engine.dispose()
    assert fired == [
        ("send of daily", "Mon 04:00", "alerted"),  # 07:00 in Moscow; no issue that day
        ("send of daily", "Tue 04:00", "alerted"),
        ("send of daily", "Wed 04:00", "sent"),
        ("send of daily", "Thu 04:00", "alerted"),
        ("reminder", "Thu 15:00", "nothing"),  # the weekly's issue is approved
        ("send of daily", "Fri 04:00", "alerted"),
        ("send", "Fri 09:00", "sent"),
    ]
    assert newsletter_mail(smtp_server) == {
        "Еженедельник <weekly@example.org>": {"both@example.org", "weekly@example.org"},
        "The Daily <daily@example.org>": {"both@example.org", "daily@example.org"},
    }
    with desk.engine.connect() as conn:
        status = dict(conn.execute(sa.select(db.issues.c.id, db.issues.c.status)).all())
        alerts = conn.execute(sa.select(db.alerts.c.kind, db.alerts.c.day)).all()
    assert status[weekly] == status[daily] == "sent"
    # the daily's alerts count apart from the weekly's: one per kind, newsletter and day
    assert sorted(alerts) == sorted(
        ("not-ready:2", date(2026, 11, 30) + timedelta(days=n)) for n in (0, 1, 3, 4)
    )


def test_a_stop_reaches_every_send_under_way_and_each_newsletter_has_its_lease(
    two: Two,
) -> None:
    """Two newsletters due at one hour send side by side (a lease each); SIGTERM must
    stop both, not only the one started last."""
    from newsletter.delivery.workers import WorkerStop
    from newsletter.schedule.lease import send_lease

    stop = WorkerStop()
    weekly, daily = stop.for_send(), stop.for_send()
    stop.set()
    assert weekly.is_set() and daily.is_set() and stop.for_send().is_set()
    assert send_lease(1) != send_lease(two.daily)
    scheduler = FridayScheduler(two.desk, FakeClock(NOW))
    try:
        jobs = {letter.newsletter_id: letter.job for letter in scheduler.letters.values()}
        assert jobs[1].named == " --newsletter main" and jobs[two.daily].named.endswith("daily")
        reminder = scheduler.letters[1].settings.remind_at
        assert (
            str(reminder) == "thu 15:00" and scheduler.letters[two.daily].settings.remind_at is None
        )
    finally:
        scheduler.store.engine.dispose()
    with two.desk.engine.begin() as conn:  # a weekly of its own is reminded the day before
        monday = add_newsletter(conn, "monday", NOW, schedule="mon 07:00 Europe/Moscow")
    assert str(view(two.desk.settings, monday).remind_at) == "sun 15:00"


def test_a_newsletter_added_or_rescheduled_while_the_scheduler_runs_gets_its_jobs(
    two: Two,
) -> None:
    """The scheduler reads the newsletters again every minute: a new one is scheduled,
    a rescheduled one moves, one unchanged keeps its next run time."""
    from newsletter.publications import change_newsletter, get_newsletter

    clock = FakeClock(datetime(2026, 11, 30, 0, 0, tzinfo=UTC))
    scheduler = FridayScheduler(two.desk, clock)
    try:
        scheduler.install(clock.now)
        assert scheduler.reload(clock.now) is False
        weekly_next = scheduler.scheduler.get_job(SEND_JOB).next_run_time
        with two.desk.engine.begin() as conn:
            evening = add_newsletter(conn, "evening", NOW, schedule="daily 18:00")
            change_newsletter(conn, get_newsletter(conn, two.daily), schedule="mon 06:00 UTC")
        assert scheduler.reload(clock.now) is True
        jobs = {job.id: job for job in scheduler.scheduler.get_jobs(jobstore="default")}
        assert f"{SEND_JOB}:{evening.id}" in jobs
        assert f"{jobs[f'{SEND_JOB}:{evening.id}'].next_run_time:%a %H:%M}" == "Mon 18:00"
        moved = jobs[f"{SEND_JOB}:{two.daily}"]
        assert f"{moved.next_run_time.astimezone(UTC):%a %H:%M}" == "Mon 06:00"
        assert f"{REMIND_JOB}:{two.daily}" in jobs  # a weekly now: reminded on Sunday
        assert jobs[SEND_JOB].next_run_time == weekly_next
        assert scheduler.letters[evening.id].slug == "evening"
        with two.desk.engine.begin() as conn:
            conn.execute(db.newsletters.delete().where(db.newsletters.c.id == evening.id))
        assert scheduler.reload(clock.now) is True
        assert scheduler.scheduler.get_job(f"{SEND_JOB}:{evening.id}") is None
    finally:
        scheduler.store.engine.dispose()


# The reader's side, in Chromium ----------------------------------------------------------


@pytest.fixture
def live_settings(smtp_settings: Settings) -> Settings:
    return replace(smtp_settings, editors=())


def test_a_reader_of_two_newsletters_unsubscribes_from_one_by_one_click_and_keeps_the_other(
    desk: Desk,
    live_server: LiveServer,
    smtp_server: SMTPServer,
    page: Any,
    screenshots: Path,
) -> None:
    with desk.engine.begin() as conn:
        daily = add_newsletter(conn, "daily", NOW, **DAILY).id
    live = Desk(live_server.settings)
    for newsletter_id in (1, daily):
        subscribed(live, "reader@example.org", newsletter_id)
    import_sources(live.engine, [str(FEEDS / "liga-ru-2021.xml")], NOW)
    day = approved_for(live, daily, date(2026, 11, 24), "The day")
    send_issue(day, live.engine, live.settings, live.transports(), lambda: NOW)
    received = next(m for m in messages(smtp_server) if "daily@" in str(m["From"]))
    # (over the loopback's http the List-Unsubscribe-Post line is left out: RFC 8058
    # wants https; the link a mail client posts to is the header's all the same)
    links = [link.strip(" <>") for link in str(received["List-Unsubscribe"]).split(",")]
    one_click = next(link for link in links if link.startswith(live_server.url))
    # what a mail client does with the header (RFC 8058): a POST, no browser, no cookie
    body = urlencode({"List-Unsubscribe": "One-Click"}).encode()
    with urlopen(Request(one_click, data=body, method="POST"), timeout=10) as answer:
        assert answer.status == 200 and answer.read() == b"Unsubscribed.\n"
    token = one_click.rstrip("/").rsplit("/", 1)[1]
    page.goto(f"{live_server.url}/subscriptions/{token}")
    rows = page.locator("ul.subscriptions li")
    assert rows.count() == 2
    weekly_row, daily_row = rows.nth(0).inner_text(), rows.nth(1).inner_text()
    assert "The Weekly" in weekly_row and "You get it." in weekly_row
    assert "The Daily Briefing" in daily_row and "You do not get it." in daily_row
    page.screenshot(path=str(screenshots / "subscriptions.png"), full_page=True)
    with live.engine.connect() as conn:
        status = dict(conn.execute(
            sa.select(db.subscribers.c.newsletter_id, db.subscribers.c.status)).all())  # fmt: skip
    assert status == {1: "active", daily: "unsubscribed"}
    # the other newsletter's next issue still reaches the reader
    before = len(smtp_server.handler.received)
    week = approved_for(live, 1, date(2026, 11, 27), "The week")
    send_issue(week, live.engine, live.settings, live.transports(), lambda: NOW)
    assert [str(m["To"]) for m in messages(smtp_server)[before:]] == ["reader@example.org"]
    # and the page's own button unsubscribes from the weekly, in the browser
    page.reload()
    page.get_by_role("button", name="Unsubscribe from").click()
    assert page.locator("h1").inner_text() == "You are unsubscribed"
    assert "the other newsletters you subscribe to keep coming" in page.content()
    page.get_by_role("link", name="All your subscriptions").click()
    assert "You do not get it." in page.locator("ul.subscriptions li").nth(0).inner_text()
    page.screenshot(path=str(screenshots / "subscriptions-after.png"), full_page=True)


# The web: sign-up, readers' pages and the desk, for each newsletter ----------------------


@pytest.fixture
def web(desk: Desk, smtp_server: SMTPServer) -> Any:
    from newsletter.editors import add_editor
    from newsletter.web import create_app

    from .test_desk import EDITOR, PASSWORD

    with desk.engine.begin() as conn:
        add_newsletter(conn, "daily", NOW, **DAILY, wording="Send me The Daily Briefing.")
        add_editor(conn, EDITOR, PASSWORD, NOW)
    app = create_app(replace(desk.settings, smtp_url=smtp_server.url, clock=NOW))
    return app.test_client()


def test_a_sign_up_form_is_its_newsletters_with_its_wording_and_the_evidence_keeps_it(
    desk: Desk, web: Any
) -> None:
    page = web.get("/subscribe?newsletter=daily").get_data(as_text=True)
    assert "Sign up for The Daily Briefing" in page
    assert "Send me The Daily Briefing." in page
    assert 'action="/subscribe?newsletter=daily"' in page
    version = desk_policy(desk)
    answer = web.post("/subscribe?newsletter=daily", data={
        "email": "new@example.org", "consent": "yes", "policy_version": version})  # fmt: skip
    assert answer.status_code == 200
    answer = web.post("/api/subscribe", json={"email": "new@example.org", "consent": True,
                                              "newsletter": "main"})  # fmt: skip
    assert answer.status_code == 202
    with desk.engine.connect() as conn:
        rows = conn.execute(
            sa.select(db.subscribers.c.newsletter_id, db.consent_events.c.wording)
            .join(db.consent_events, db.consent_events.c.subscriber_id == db.subscribers.c.id)
            .where(db.subscribers.c.email == "new@example.org")
            .order_by(db.subscribers.c.newsletter_id)
        ).all()
    assert rows[1] == (2, "Send me The Daily Briefing.")
    assert rows[0][0] == 1 and rows[0][1] != "Send me The Daily Briefing."


def desk_policy(desk: Desk) -> str:
    with desk.engine.connect() as conn:
        return str(conn.execute(sa.select(db.policy_versions.c.version)).scalar_one())


@pytest.mark.parametrize("slug", ["weekly", "x" * 5000, "daily'--", "%00", "dai ly"])
def test_a_newsletter_that_does_not_exist_is_a_clear_refusal_and_stores_nothing(
    desk: Desk, web: Any, slug: str
) -> None:
    assert web.get("/subscribe", query_string={"newsletter": slug}).status_code == 404
    assert web.head("/subscribe", query_string={"newsletter": slug}).status_code == 404
    form = web.post("/subscribe", query_string={"newsletter": slug},
                    data={"email": "x@example.org", "consent": "yes"})  # fmt: skip
    assert form.status_code == 404 and "There is no such newsletter." in form.get_data(True)
    api = web.post("/api/subscribe", json={"email": "x@example.org", "consent": True,
                                           "newsletter": slug})  # fmt: skip
    assert api.status_code == 400 and api.get_json() == {
        "error": "There is no such newsletter.", "field": "newsletter"}  # fmt: skip
    assert web.post("/api/subscribe", json={"email": "x@example.org", "consent": True,
                                            "newsletter": 2}).status_code == 400  # fmt: skip
    assert web.get("/archive", query_string={"newsletter": slug}).status_code == 404
    with desk.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.subscribers)).scalar() == 0


def test_the_subscriptions_page_answers_head_and_refuses_a_bad_link(desk: Desk, web: Any) -> None:
    from newsletter.readers.tokens import reader_token

    reader = subscribed(desk, "r@example.org", 2)
    token = reader_token(SECRET, reader)
    assert web.head(f"/subscriptions/{token}").status_code == 200
    page = web.get(f"/subscriptions/{token}").get_data(as_text=True)
    assert "The Daily Briefing" in page and "You get it." in page
    assert 'href="/subscribe?newsletter=main"' in page  # not subscribed to the weekly
    assert web.get(f"/subscriptions/{token[:-2]}xx").status_code == 400
    assert web.post(f"/subscriptions/{token}").status_code == 405
    unsubscribe_page = web.get(f"/unsubscribe/{token}").get_data(as_text=True)
    assert "You will get no more of The Daily Briefing at this address" in unsubscribe_page
    assert f'href="/subscriptions/{token}"' in unsubscribe_page
    with desk.engine.begin() as conn:
        from newsletter.readers.access import forget

        forget(conn, "r@example.org", NOW)
    assert web.get(f"/subscriptions/{token}").status_code == 404  # nothing left to show


def test_the_desk_switches_newsletter_and_starts_the_chosen_ones_issue(
    desk: Desk, web: Any
) -> None:
    from .test_desk import logged_in

    token = logged_in(web)
    page = web.get("/desk/issues").get_data(as_text=True)
    assert 'aria-current="page">The Weekly<' in page and ">The Daily Briefing<" in page
    page = web.get("/desk/issues?newsletter=daily").get_data(as_text=True)
    assert 'aria-current="page">The Daily Briefing<' in page
    action = re.search(r'<form method="post" action="([^"]+)"', page)
    assert action is not None and action.group(1) == "/desk/issues?newsletter=daily"
    web.get("/desk/issues?newsletter=main")  # another tab switches the session meanwhile
    made = web.post(action.group(1), data={"csrf": token, "day": "2026-11-24"})
    assert made.status_code == 303  # a Tuesday: every day is the daily's send day
    with desk.engine.connect() as conn:
        issue = conn.execute(sa.select(db.issues.c.id, db.issues.c.newsletter_id)).one()
    assert issue.newsletter_id == 2
    shown = web.get(f"/desk/issues/{issue.id}").get_data(as_text=True)
    assert "daily@example.org" in shown or "The Daily Briefing" in shown
    assert web.get("/desk/issues?newsletter=nope").status_code == 404
    web.get("/desk/issues?newsletter=main")
    refused = web.post("/desk/issues", data={"csrf": token, "day": "2026-11-24"})
    assert refused.status_code == 303  # the weekly's send day is a Friday: refused, flashed
    with desk.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.issues)).scalar() == 1


def test_an_editor_switches_to_the_daily_and_starts_its_issue_in_the_browser(
    desk: Desk, live_server: LiveServer, page: Any, screenshots: Path
) -> None:
    from newsletter.editors import add_editor

    from .test_desk import EDITOR, PASSWORD

    with desk.engine.begin() as conn:
        add_newsletter(conn, "daily", NOW, **DAILY)
        add_editor(conn, EDITOR, PASSWORD, NOW)
    page.goto(f"{live_server.url}/desk/issues")
    page.get_by_label("Email").fill(EDITOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    switch = page.get_by_role("navigation", name="Newsletter")
    assert switch.get_by_role("link", name="The Weekly").get_attribute("aria-current") == "page"
    switch.get_by_role("link", name="The Daily Briefing").click()
    assert page.get_by_role("navigation", name="Newsletter").get_by_role(
        "link", name="The Daily Briefing").get_attribute("aria-current") == "page"  # fmt: skip
    page.screenshot(path=str(screenshots / "desk-two-newsletters.png"), full_page=True)
    page.get_by_role("button", name="Start the issue for").first.click()
    page.locator("h1").wait_for()
    with desk.engine.connect() as conn:
        made = conn.execute(sa.select(db.issues.c.newsletter_id, db.issues.c.send_date)).one()
    assert made.newsletter_id == 2
    page.screenshot(path=str(screenshots / "desk-daily-issue.png"), full_page=True)


def test_a_new_policy_asks_an_address_once_and_its_yes_counts_for_every_newsletter(
    two: Two,
) -> None:
    from newsletter.readers.consent import publish_policy
    from newsletter.readers.subscribers import reconsent, request_reconsent

    desk = two.desk
    ids = subscribed(desk, "p@example.org", 1), subscribed(desk, "p@example.org", two.daily)
    other = subscribed(desk, "q@example.org", two.daily)
    with desk.engine.begin() as conn:
        policy = publish_policy(conn, "2027-01-01", "A new text.", "I agree.", NOW)
        mails = request_reconsent(conn, policy, SECRET, NOW)
    assert [(m.email, m.subscriber_id) for m in mails] == [
        ("p@example.org", ids[0]), ("q@example.org", other)]  # fmt: skip
    with desk.engine.begin() as conn:
        assert reconsent(conn, mails[0].token, Evidence(source="click"), (SECRET,), NOW)
        status = dict(conn.execute(sa.select(db.subscribers.c.id, db.subscribers.c.status)).all())
    assert (status[ids[0]], status[ids[1]], status[other]) == ("active", "active", "reconsent")


def test_the_desks_readers_are_the_chosen_newsletters(desk: Desk, web: Any) -> None:
    from .test_desk import logged_in

    subscribed(desk, "weekly-only@example.org", 1)
    subscribed(desk, "daily-only@example.org", 2)
    logged_in(web)
    weekly = web.get("/desk/readers").get_data(as_text=True)
    daily = web.get("/desk/readers?newsletter=daily").get_data(as_text=True)
    assert "weekly-only@example.org" in weekly and "daily-only@example.org" not in weekly
    assert "daily-only@example.org" in daily and "weekly-only@example.org" not in daily


def test_the_admin_page_lists_each_newsletter_with_what_it_takes_from_the_settings(
    desk: Desk, web: Any
) -> None:
    from .test_desk import logged_in

    logged_in(web)  # the desk's first account: an admin
    answer = web.get("/desk/admin")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200, page[:300]
    table = page[page.index('id="newsletters"') : page.index('id="settings"')]
    assert "<code>main</code></td><td>The Weekly</td><td>fri 09:00 UTC</td>" in table
    assert (
        "<code>daily</code></td><td>The Daily Briefing</td><td>daily 07:00 Europe/Moscow" in table
    )
    assert "The Daily &lt;daily@example.org&gt;" in table
