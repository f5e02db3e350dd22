"""The Friday job: APScheduler fires it at the site's hour and it sends the approved
issue once; the day before, a reminder when that issue is not approved yet.

When (schedule.when): a cron trigger from NEWSLETTER_SEND_AT in NEWSLETTER_TIMEZONE. The
jobs live in the app's database, so a process that was down at the hour finds the missed
run when it starts: within the misfire grace it sends late; after it, the editors are
alerted instead.

What: `friday_send` looks at the issue dated that send day. Approved: the delivery
engine, which resumes and never mails a reader twice. Draft, empty or missing: no
send, an alert. Sent or cancelled: nothing.

Who (schedule.lease): a lease row in the database, held while a job sends.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from types import FrameType
from typing import Any, Protocol

import sqlalchemy as sa
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_STARTED,
    JobExecutionEvent,
    SchedulerEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from newsletter.bounces.record import check_last_issue
from newsletter.curation.issues import get_issue, issue_id_for_day
from newsletter.delivery.send import SendOptions, SendReport, send_issue
from newsletter.delivery.workers import WorkerStop
from newsletter.errors import LeaseHeld, NewsletterError, NotFound
from newsletter.models import Issue
from newsletter.schedule.alerts import Alert, alert_editors
from newsletter.schedule.lease import LEASE_TTL, SEND_LEASE, holding
from newsletter.schedule.when import cron_trigger, describe, last_fire, next_fire
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.transport.base import Transport

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]

SEND_JOB, REMIND_JOB = "friday-send", "editors-reminder"
RETRY_PATIENCE = timedelta(minutes=30)  # a scheduled send waits this long for deferred readers
RETRY_EVERY = timedelta(minutes=10)  # a paused scheduled send is tried again this often

# How a one-shot run ends, for cron and systemd: sent, nothing to do, or a failure.
EXIT_CODES = {
    "sent": 0,
    "dry-run": 0,
    "nothing": 3,
    "standby": 3,
    "not-due": 3,
    "alerted": 1,
    "failed": 1,
    "incomplete": 1,
    "stopped": 1,
    "paused": 5,
}


@dataclass(frozen=True)
class JobResult:
    outcome: str  # a key of EXIT_CODES
    message: str
    report: SendReport | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def as_dict(self) -> dict[str, Any]:
        report = self.report.as_dict() if self.report else None
        return {"outcome": self.outcome, "message": self.message, "report": report}

    def lines(self) -> list[str]:
        return [*(self.report.lines() if self.report else []), f"{self.outcome}: {self.message}"]


# What -----------------------------------------------------------------------------------


def issue_of_day(engine: sa.Engine, day: date) -> Issue | None:
    with engine.connect() as conn:
        issue_id = issue_id_for_day(conn, day)
        return None if issue_id is None else get_issue(conn, issue_id)


def not_ready_reason(issue: Issue | None, day: date) -> str:
    if issue is None:
        return f"there is no issue for {day:%A %d %B %Y}"
    if not issue.items:
        return f"issue {issue.id} for {day:%A %d %B %Y} has no articles and is not approved"
    return f"issue {issue.id} for {day:%A %d %B %Y} is a draft ({len(issue.items)} articles)"


def how_to_fix(issue: Issue | None, settings: Settings) -> str:
    if issue is None:
        return (
            f"Start it in the desk: {settings.base_url}/desk/\n"
            "or on the command line: newsletter issue new\n"
            "then pick articles, approve it, and send it: python send.py --now\n"
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
    ) -> None:
        """`stop`: an event for a one-shot run; a WorkerStop for a long-lived scheduler, so
        that a send that pauses (its relays are down) stops that send, not the scheduler."""
        self.desk, self.settings, self.clock = desk, desk.settings, clock
        self.stops = stop if isinstance(stop, WorkerStop) else None
        self.stop = stop.asked if isinstance(stop, WorkerStop) else stop or threading.Event()
        self.progress = progress
        self.send_stop = self.stop  # the stop of the send under way
        self.alerting = True

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
                with holding(self.desk.engine, SEND_LEASE, self.clock, self._new_send_stop()):
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
            issue = issue_of_day(engine, day)
        if issue is not None and issue.status == "sent":
            return JobResult("nothing", f"issue {issue.id} for {issue.send_date} was sent already")
        if issue is not None and issue.status == "cancelled":
            return JobResult("nothing", f"issue {issue.id} for {issue.send_date} is cancelled")
        if issue is None or issue.status == "draft":
            reason = not_ready_reason(issue, day)
            if not self.alerting:
                return JobResult("failed", f"{reason}: only an approved issue is sent")
            body = (
                f"{reason[0].upper()}{reason[1:]}, so nothing was sent to the readers.\n\n"
                f"{how_to_fix(issue, self.settings)}"
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
        if dry_run:
            return JobResult(
                "dry-run", f"issue {issue.id} would go to {report.audience} readers", report
            )
        if report.status == "sent":
            return JobResult("sent", f"issue {issue.id} for {issue.send_date} is sent", report)
        if report.paused:
            return JobResult("paused", f"issue {issue.id}: {report.paused}", report)
        if report.stopped:
            return JobResult("stopped", f"issue {issue.id}: stopped on request", report)
        if report.uncertain:
            return JobResult(
                "incomplete",
                f"issue {issue.id}: {report.uncertain} readers uncertain after a crash, not "
                f"re-sent (newsletter status {issue.id} lists them; send --resend-uncertain "
                "sends them)",
                report,
            )
        return JobResult(
            "incomplete",
            f"issue {issue.id}: {report.deferred} readers deferred; the next run continues",
            report,
        )

    def missed(self, fire: datetime) -> JobResult:
        """The send time passed with no scheduler running, beyond the grace: tell the editors."""
        day = fire.astimezone(self.settings.timezone).date()
        issue = issue_of_day(self.desk.engine, day)
        if issue is not None and issue.status in ("sent", "cancelled"):
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
            body += f"Also: {not_ready_reason(issue, day)}.\n\n{how_to_fix(issue, self.settings)}"
        else:
            body += f"To send it now:\n    python send.py --now --issue {issue.id}\n"
        return JobResult("alerted", self.alert("missed", day, subject, body, dry_run=False))

    def remind(self, fire: datetime) -> JobResult:
        """The day before: tell the editors when the coming issue is not approved yet."""
        settings = self.settings
        day = settings.send_day(fire)
        issue = issue_of_day(self.desk.engine, day)
        if issue is not None and issue.status != "draft":
            return JobResult("nothing", f"issue {issue.id} for {day} is {issue.status}")
        send_time = datetime.combine(day, settings.send_at.at, tzinfo=settings.timezone)
        when = describe(send_time, settings.timezone)
        reason = not_ready_reason(issue, day)
        body = (
            f"{reason[0].upper()}{reason[1:]}. It goes out {when} only if it is approved by "
            f"then.\n\n{how_to_fix(issue, settings)}"
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
    issue = issue_of_day(job.desk.engine, fire.astimezone(settings.timezone).date())
    if issue is not None and issue.status in ("approved", "sending") and not dry_run:
        return job.missed(fire)  # approved and never (fully) sent, and now too late
    return JobResult("not-due", f"not due: next send {describe(coming, settings.timezone)}")


# The long-lived scheduler ---------------------------------------------------------------

_running: FridayScheduler | None = None  # the jobs in the store name functions, not objects


def scheduled_send() -> None:
    assert _running is not None, "no scheduler runs in this process"
    _running.fire(SEND_JOB)


def scheduled_reminder() -> None:
    assert _running is not None, "no scheduler runs in this process"
    _running.fire(REMIND_JOB)


class FridayScheduler:
    """APScheduler's BlockingScheduler with its jobs in the app's database."""

    def __init__(self, desk: Desk, clock: Clock) -> None:
        self.desk, self.settings, self.clock = desk, desk.settings, clock
        self.stops = WorkerStop()
        self.stop = self.stops.asked
        self.job = FridayJob(desk, clock, self.stops)
        # its own engine: the scheduler disposes of it on shutdown while a send may still run
        self.store = SQLAlchemyJobStore(
            engine=db.create_db_engine(self.settings.database_url), tablename="scheduler_jobs"
        )
        self.scheduler = BlockingScheduler(
            jobstores={"default": self.store, "transient": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(2)},
            job_defaults={
                "coalesce": True,  # a run missed several times runs once
                "max_instances": 1,
                "misfire_grace_time": int(self.settings.misfire_grace.total_seconds()),
            },
            timezone=self.settings.timezone,
        )
        self.scheduler.add_listener(self._missed, EVENT_JOB_MISSED)
        self.scheduler.add_listener(self._failed, EVENT_JOB_ERROR)
        self.scheduler.add_listener(self._started, EVENT_SCHEDULER_STARTED)
        self.started = threading.Event()
        self.closer: threading.Thread | None = None

    def wanted(self) -> dict[str, tuple[Callable[[], None], CronTrigger, str]]:
        settings, zone = self.settings, self.settings.timezone
        jobs = {SEND_JOB: (scheduled_send, cron_trigger(settings.send_at, zone), "send")}
        if settings.remind_at is not None:
            jobs[REMIND_JOB] = (
                scheduled_reminder,
                cron_trigger(settings.remind_at, zone),
                "reminder",
            )
        return jobs

    def install(self, now: datetime) -> dict[str, datetime]:
        """Put the jobs in the store. A job whose schedule is unchanged keeps its stored
        next run time, so a run missed while no scheduler was up is found (and run late
        within the grace, or reported). Returns each job's next run time."""
        self.store.start(self.scheduler, "default")  # to read what an earlier process left
        wanted = self.wanted()
        for stale in self.store.get_all_jobs():
            if stale.id not in wanted:
                self.store.remove_job(stale.id)
        planned = {}
        for job_id, (func, trigger, name) in wanted.items():
            old = self.store.lookup_job(job_id)
            keep = old is not None and repr(old.trigger) == repr(trigger)
            run_at = old.next_run_time if keep and old is not None else None
            run_at = run_at or trigger.get_next_fire_time(None, now)
            planned[name] = run_at
            self.scheduler.add_job(
                func, trigger, id=job_id, name=name, replace_existing=True, next_run_time=run_at
            )
        return planned

    def resume_interrupted(self, now: datetime, planned: datetime) -> bool:
        """A scheduler that died mid-send (or before it began) already moved its job to
        next week; if the send day's issue is still approved or sending within the
        grace, run the send once more now: the ledger makes it a resume."""
        settings = self.settings
        fire = last_fire(settings.send_at, settings.timezone, now)
        if planned <= now or now - fire > settings.misfire_grace:
            return False  # the job itself is due (and runs), or it is too late
        issue = issue_of_day(self.desk.engine, fire.astimezone(settings.timezone).date())
        if issue is None or issue.status not in ("approved", "sending"):
            return False
        log.info(
            "issue %s for %s is %s: resuming its send", issue.id, issue.send_date, issue.status
        )
        self.scheduler.add_job(scheduled_send, id="resume-send", jobstore="transient")
        return True

    def fire(self, job_id: str) -> None:
        now = self.clock()
        if job_id == SEND_JOB:
            fire = last_fire(self.settings.send_at, self.settings.timezone, now)
            day = fire.astimezone(self.settings.timezone).date()
            log.info("send for %s: started", day)
            patience = fire + self.settings.misfire_grace - now
            result = self.job.send(day, patience=patience)
        else:
            assert self.settings.remind_at is not None
            fire = last_fire(self.settings.remind_at, self.settings.timezone, now)
            log.info("reminder: started")
            result = self.job.remind(fire)
        for line in result.lines():
            log.info("%s", line)
        if job_id == SEND_JOB and result.outcome in ("paused", "incomplete"):
            self._follow_up(fire, result)
        self._log_next(job_id)

    def _follow_up(self, fire: datetime, result: JobResult) -> None:
        """A send that paused (relays down) or left readers deferred: the editors hear of it
        once, and the job runs again every few minutes while the grace lasts."""
        day = fire.astimezone(self.settings.timezone).date()
        subject = f"Send {result.outcome} for {day:%A %d %B}: {result.message}"
        body = (
            f"{result.message}\n\nThe scheduler tries again every {RETRY_EVERY.seconds // 60} "
            f"minutes until {describe(fire + self.settings.misfire_grace, self.settings.timezone)}"
            ". To resume it by hand: python send.py --now\n"
        )
        log.warning("%s", self.job.alert(result.outcome, day, subject, body, dry_run=False))
        again = self.clock() + RETRY_EVERY
        if again < fire + self.settings.misfire_grace and not self.stop.is_set():
            self.scheduler.add_job(
                scheduled_send, "date", run_date=again, id="retry-send", jobstore="transient",
                replace_existing=True,
            )  # fmt: skip
            log.info("send for %s: tried again at %s", day, describe(again, self.settings.timezone))

    def _log_next(self, job_id: str) -> None:
        """From the trigger, not the scheduler: asking the scheduler while it shuts down
        would wait for the lock its shutdown holds until this very job ends."""
        at = self.settings.send_at if job_id == SEND_JOB else self.settings.remind_at
        if at is not None:
            name = "send" if job_id == SEND_JOB else "reminder"
            upcoming = next_fire(at, self.settings.timezone, self.clock() + timedelta(seconds=1))
            log.info("next %s: %s", name, describe(upcoming, self.settings.timezone))

    def _missed(self, event: JobExecutionEvent) -> None:
        if event.job_id != SEND_JOB:
            log.warning("the reminder due %s was missed; skipped", event.scheduled_run_time)
            return
        result = self.job.missed(event.scheduled_run_time)
        log.warning("send missed: %s", result.message)
        self._log_next(event.job_id)

    def _failed(self, event: JobExecutionEvent) -> None:
        log.error("job %s failed: %r", event.job_id, event.exception)

    def _ask_stop(self, signum: int, _frame: FrameType | None) -> None:
        if self.closer is not None:
            return
        name = signal.Signals(signum).name
        log.info("%s: stopping (a send in progress finishes its messages in flight)", name)
        self.stops.set()  # the scheduler, and the send under way
        self.closer = threading.Thread(target=self._shut_down, name="scheduler-shutdown")
        self.closer.start()

    def _shut_down(self) -> None:
        self.started.wait()  # a signal may come before the scheduler runs: shut down after
        if self.scheduler.running:
            self.scheduler.shutdown()

    def _started(self, _event: SchedulerEvent) -> None:
        log.info("scheduler started on %s; jobs kept in the database", socket.gethostname())
        self.started.set()

    def run(self) -> None:
        """Run until SIGTERM or SIGINT; a send in progress stops cleanly first."""
        global _running
        _running = self
        previous = {s: signal.signal(s, self._ask_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            now = self.clock()
            planned = self.install(now)
            for name, run_at in planned.items():
                when = describe(run_at, self.settings.timezone)
                late = " (missed while no scheduler ran: handled now)" if run_at < now else ""
                log.info("next %s: %s%s", name, when, late)
            self.resume_interrupted(now, planned["send"])
            self.scheduler.start()
            if self.closer is not None:
                self.closer.join()
        finally:
            self.started.set()  # a shutdown thread waiting for a start that failed goes on
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            _running = None
        log.info("scheduler stopped")
