"""The Friday job: APScheduler fires it at the site's hour and it sends the approved
issue once; the day before, a reminder when that issue is not approved yet.

When (schedule.when): a cron trigger from NEWSLETTER_SEND_AT in NEWSLETTER_TIMEZONE. The
jobs live in the app's database, so a process that was down at the hour finds the missed
run when it starts: within the misfire grace it sends late; after it, the editors are
alerted instead.

What: `friday_send` looks at the issue dated that send day. Approved: the delivery
engine, which resumes and never mails a reader twice. Draft, empty or missing: no
send, an alert. Sent, cancelled or held at the desk: nothing.

Who (schedule.lease): a lease row in the database, held while a job sends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Protocol

import sqlalchemy as sa

from newsletter.bounces.record import check_last_issue
from newsletter.curation.issues import get_issue, issue_id_for_day
from newsletter.delivery.report import SendOptions, SendReport
from newsletter.delivery.send import send_issue
from newsletter.delivery.workers import WorkerStop
from newsletter.errors import LeaseHeld, NewsletterError, NotFound
from newsletter.models import Issue
from newsletter.publications import list_newsletters
from newsletter.schedule.alerts import Alert, alert_editors
from newsletter.schedule.lease import LEASE_TTL, holding, send_lease
from newsletter.schedule.outcome import JobResult, send_outcome, trouble_alert
from newsletter.schedule.when import describe, last_fire, next_fire
from newsletter.settings import Settings
from newsletter.transport.base import Transport

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]

SEND_JOB, REMIND_JOB = "friday-send", "editors-reminder"
RETRY_PATIENCE = timedelta(minutes=30)  # a scheduled send waits this long for deferred readers
RETRY_EVERY = timedelta(minutes=10)  # a paused scheduled send is tried again this often

# What -----------------------------------------------------------------------------------


def issue_of_day(engine: sa.Engine, day: date, newsletter_id: int = 1) -> Issue | None:
    with engine.connect() as conn:
        issue_id = issue_id_for_day(conn, day, newsletter_id)
        return None if issue_id is None else get_issue(conn, issue_id)


def not_ready_reason(issue: Issue | None, day: date) -> str:
    if issue is None:
        return f"there is no issue for {day:%A %d %B %Y}"
    if not issue.items:
        return f"issue {issue.id} for {day:%A %d %B %Y} has no articles and is not approved"
    return f"issue {issue.id} for {day:%A %d %B %Y} is a draft ({len(issue.items)} articles)"


def how_to_fix(issue: Issue | None, settings: Settings, named: str = "") -> str:
    """`named`: " --newsletter SLUG" where the desk has several newsletters."""
    if issue is None:
        return (
            f"Start it in the desk: {settings.base_url}/desk/\n"
            f"or on the command line: newsletter issue new{named}\n"
            f"then pick articles, approve it, and send it: python send.py --now{named}\n"
        )
    return (
        f"Open it in the desk: {settings.base_url}/desk/issues/{issue.id}\n"
        "Approve and send it:\n"
        f"    newsletter issue approve {issue.id}\n"
        f"    python send.py --now --issue {issue.id}\n"
    )


class Desk(Protocol):
    """What the jobs use of the composition root (newsletter.app.Desk): the schedule sits
    below it and is handed one."""

    @property
    def engine(self) -> sa.Engine: ...

    @property
    def settings(self) -> Settings: ...

    def transport(self) -> Transport: ...

    def transports(self) -> Callable[[], Transport]: ...


class FridayJob:
    """The jobs' work, the same for the scheduler, `--now` and `--once`."""

    def __init__(
        self,
        desk: Desk,
        clock: Clock,
        stop: threading.Event | WorkerStop | None = None,
        progress: Callable[[SendReport], None] | None = None,
        settings: Settings | None = None,
    ) -> None:
        """`stop`: an event for a one-shot run; a WorkerStop for a long-lived scheduler, so
        that a send that pauses (its relays are down) stops that send, not the scheduler.
        `settings`: one newsletter's view of the desk's (publications.view); else the first."""
        self.desk, self.settings, self.clock = desk, settings or desk.settings, clock
        self.stops = stop if isinstance(stop, WorkerStop) else None
        self.stop = stop.asked if isinstance(stop, WorkerStop) else stop or threading.Event()
        self.progress = progress
        self.send_stop = self.stop  # the stop of the send under way
        self.alerting = True

    @property
    def named(self) -> str:
        """How a command names this job's newsletter: " --newsletter SLUG" where the desk
        has several, else nothing."""
        with self.desk.engine.connect() as conn:
            found = list_newsletters(conn)
        mine = [one.slug for one in found if one.id == self.settings.newsletter_id]
        return f" --newsletter {mine[0]}" if len(found) > 1 and mine else ""

    def _new_send_stop(self) -> threading.Event:
        self.send_stop = self.stops.for_send() if self.stops else self.stop
        return self.send_stop

    def alert(self, kind: str, day: date, subject: str, body: str, dry_run: bool) -> str:
        if dry_run:
            return f"{subject} (dry run: editors not mailed)"
        alert = Alert(kind, day, subject, body)
        return alert_editors(
            alert, self.desk.engine, self.settings, self.desk.transport, self.clock()
        )

    def send(
        self,
        day: date,
        *,
        issue_ref: str | None = None,
        dry_run: bool = False,
        patience: timedelta = timedelta(0),
        alert: bool = True,
    ) -> JobResult:
        """Send the issue dated `day` (or the one named). While another process holds the
        send lease, stand by: give up at once, or wait up to `patience` for it to finish
        or die, then take over (the ledger makes the rest of its send a resume)."""
        self.alerting = alert and issue_ref is None  # a person who named it hears it, no mail
        if dry_run:
            return self._send(day, issue_ref, dry_run=True)
        deadline = self.clock() + patience
        while True:
            try:
                lease = send_lease(self.settings.newsletter_id)
                with holding(self.desk.engine, lease, self.clock, self._new_send_stop()):
                    return self._send(day, issue_ref, dry_run=False)
            except LeaseHeld as exc:
                if self.clock() >= deadline or self.stop.is_set():
                    return JobResult("standby", f"{exc}: it sends; this process stands by")
                log.info("%s: standing by", exc)
                self.stop.wait(LEASE_TTL.total_seconds() / 4)

    def _send(self, day: date, issue_ref: str | None, dry_run: bool) -> JobResult:
        engine = self.desk.engine
        if issue_ref is not None:
            try:
                with engine.connect() as conn:
                    issue: Issue | None = get_issue(conn, issue_ref)
            except NotFound as exc:
                return JobResult("failed", str(exc))
        else:
            issue = issue_of_day(engine, day, self.settings.newsletter_id)
        if issue is not None and issue.status == "sent":
            return JobResult("nothing", f"issue {issue.id} for {issue.send_date} was sent already")
        if issue is not None and issue.status in ("cancelled", "held"):
            why = "held at the desk" if issue.status == "held" else "cancelled"
            return JobResult("nothing", f"issue {issue.id} for {issue.send_date} is {why}")
        if issue is None or issue.status == "draft":
            reason = not_ready_reason(issue, day)
            if not self.alerting:
                return JobResult("failed", f"{reason}: only an approved issue is sent")
            body = (
                f"{reason[0].upper()}{reason[1:]}, so nothing was sent to the readers.\n\n"
                f"{how_to_fix(issue, self.settings, self.named)}"
            )
            line = self.alert("not-ready", day, f"Nothing sent: {reason}", body, dry_run)
            return JobResult("alerted", line)
        return self._deliver(issue, dry_run)

    def _deliver(self, issue: Issue, dry_run: bool) -> JobResult:
        options = replace(SendOptions.from_settings(self.settings), wait_for_retries=RETRY_PATIENCE)
        try:
            if issue.status == "approved" and not dry_run:  # a send under way is resumed anyway
                with self.desk.engine.connect() as conn:
                    check_last_issue(conn, issue.id)
            report = send_issue(
                issue.id,
                self.desk.engine,
                self.settings,
                self.desk.transports(),
                self.clock,
                dry_run=dry_run,
                options=options,
                stop=self.send_stop,
                progress=self.progress,
            )
        except NewsletterError as exc:  # hygiene, preflight, templates: nobody was mailed
            subject = f"Send failed: issue {issue.id} for {issue.send_date}: {exc}"
            body = (
                f"{exc}\n\nNothing was sent. Fix it, then run: python send.py --now --issue "
                f"{issue.id}\n(a refusal for list hygiene: newsletter send {issue.id} --force)\n"
            )
            return JobResult(
                "failed", self.alert("failed", issue.send_date, subject, body, dry_run)
            )
        result = send_outcome(issue, report)
        trouble = trouble_alert(issue, report)
        if trouble is not None:  # once per kind and day: the scheduler's follow-up adds none
            self.alert(result.outcome, issue.send_date, *trouble, dry_run)
        return result

    def missed(self, fire: datetime) -> JobResult:
        """The send time passed with no scheduler running, beyond the grace: tell the editors."""
        day = fire.astimezone(self.settings.timezone).date()
        issue = issue_of_day(self.desk.engine, day, self.settings.newsletter_id)
        if issue is not None and issue.status in ("sent", "cancelled", "held"):
            return JobResult("nothing", f"issue {issue.id} for {day} is {issue.status}")
        zone = self.settings.timezone
        late = self.clock() - fire
        subject = f"Send missed: {day:%A %d %B} went by with no scheduler running"
        body = (
            f"The send due {describe(fire, zone)} did not run: no scheduler was up until "
            f"{describe(self.clock(), zone)}, {_hours(late)} late, past the grace of "
            f"{_hours(self.settings.misfire_grace)} (NEWSLETTER_MISFIRE_GRACE). "
            "Nothing was sent.\n\n"
        )
        if issue is None or issue.status == "draft":
            fix = how_to_fix(issue, self.settings, self.named)
            body += f"Also: {not_ready_reason(issue, day)}.\n\n{fix}"
        else:
            body += f"To send it now:\n    python send.py --now --issue {issue.id}\n"
        return JobResult("alerted", self.alert("missed", day, subject, body, dry_run=False))

    def remind(self, fire: datetime) -> JobResult:
        """The day before: tell the editors when the coming issue is not approved yet."""
        settings = self.settings
        day = settings.send_day(fire)
        issue = issue_of_day(self.desk.engine, day, self.settings.newsletter_id)
        if issue is not None and issue.status != "draft":
            return JobResult("nothing", f"issue {issue.id} for {day} is {issue.status}")
        send_time = datetime.combine(day, settings.send_at.at, tzinfo=settings.timezone)
        when = describe(send_time, settings.timezone)
        reason = not_ready_reason(issue, day)
        body = (
            f"{reason[0].upper()}{reason[1:]}. It goes out {when} only if it is approved by "
            f"then.\n\n{how_to_fix(issue, settings, self.named)}"
        )
        subject = f"Reminder: {reason}"
        return JobResult("alerted", self.alert("reminder", day, subject, body, dry_run=False))


def _hours(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def run_once(job: FridayJob, now: datetime, dry_run: bool = False) -> JobResult:
    """For cron: run the send if its time has come and the grace has not passed."""
    settings = job.settings
    fire = last_fire(settings.send_at, settings.timezone, now)
    if now - fire <= settings.misfire_grace:
        return job.send(fire.astimezone(settings.timezone).date(), dry_run=dry_run)
    coming = next_fire(settings.send_at, settings.timezone, now)
    day = fire.astimezone(settings.timezone).date()
    issue = issue_of_day(job.desk.engine, day, settings.newsletter_id)
    if issue is not None and issue.status in ("approved", "sending") and not dry_run:
        return job.missed(fire)  # approved and never (fully) sent, and now too late
    return JobResult("not-due", f"not due: next send {describe(coming, settings.timezone)}")


# The functions the scheduler's stored jobs name --------------------------------------

# A stored job names its function by path (newsletter.schedule.job:scheduled_send), so
# these stay here; the scheduler that runs in this process points `firing` at itself.
firing: Callable[[str, int], object] | None = None


def scheduled_send(newsletter_id: int = 1) -> None:
    assert firing is not None, "no scheduler runs in this process"
    firing(SEND_JOB, newsletter_id)


def scheduled_reminder(newsletter_id: int = 1) -> None:
    assert firing is not None, "no scheduler runs in this process"
    firing(REMIND_JOB, newsletter_id)
