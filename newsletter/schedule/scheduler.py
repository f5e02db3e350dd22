"""The long-lived scheduler: APScheduler's BlockingScheduler with the jobs kept in the
app's database, the send resumed after a crash, a paused send tried again, and a clean
stop on SIGTERM. The work each job does is `schedule.job.FridayJob`'s."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType

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

from newsletter.delivery.workers import WorkerStop
from newsletter.publications import list_newsletters, view
from newsletter.schedule import job as jobs
from newsletter.schedule.job import (
    REMIND_JOB,
    RETRY_EVERY,
    SEND_JOB,
    Clock,
    Desk,
    FridayJob,
    issue_of_day,
    scheduled_reminder,
    scheduled_send,
)
from newsletter.schedule.lease import beating
from newsletter.schedule.outcome import JobResult
from newsletter.schedule.when import cron_trigger, describe, last_fire, next_fire
from newsletter.settings import Settings
from newsletter.store.engine import create_db_engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Letter:
    """One newsletter as the scheduler runs it: its settings (its schedule, sender and
    name over the desk's), its job, and the ids its stored jobs go by."""

    newsletter_id: int
    slug: str
    settings: Settings
    job: FridayJob

    def job_id(self, kind: str) -> str:
        # the first newsletter's jobs keep the ids they had before there were several;
        # the others' go by id, so a new slug keeps a stored job's next run time
        return kind if self.newsletter_id == 1 else f"{kind}:{self.newsletter_id}"

    @property
    def label(self) -> str:
        return "" if self.newsletter_id == 1 else f" of {self.slug}"


RELOAD_EVERY = timedelta(minutes=1)  # how soon a newsletter added or changed is scheduled


def _seen(letter: Letter) -> tuple[object, ...]:
    """What of a newsletter its jobs depend on."""
    s = letter.settings
    return (letter.newsletter_id, letter.slug, s.site_name, s.from_addr, s.list_id,
            str(s.send_at), s.timezone.key, str(s.remind_at), str(s.templates))  # fmt: skip


class FridayScheduler:
    """APScheduler's BlockingScheduler with its jobs in the app's database: a send (and
    its reminder) for each newsletter of the desk, on that newsletter's schedule."""

    def __init__(self, desk: Desk, clock: Clock) -> None:
        self.desk, self.settings, self.clock = desk, desk.settings, clock
        self.stops = WorkerStop()
        self.stop = self.stops.asked
        self.letters = self._letters()
        # its own engine: the scheduler disposes of it on shutdown while a send may still run
        self.store = SQLAlchemyJobStore(
            engine=create_db_engine(self.settings.database_url), tablename="scheduler_jobs"
        )
        self.scheduler = BlockingScheduler(
            jobstores={"default": self.store, "transient": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(8)},  # newsletters send side by side
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

    def _letters(self) -> dict[int, Letter]:
        with self.desk.engine.connect() as conn:
            found = list_newsletters(conn)
        letters = {}
        for newsletter in found:
            seen = view(self.settings, newsletter)
            job = FridayJob(self.desk, self.clock, self.stops, settings=seen)
            letters[newsletter.id] = Letter(newsletter.id, newsletter.slug, seen, job)
        return letters

    @property
    def job(self) -> FridayJob:
        """The first newsletter's job."""
        return self.letters[min(self.letters)].job

    def reload(self, now: datetime) -> bool:
        """Follow the newsletters as editors change them (one added, one rescheduled, a
        new sender): the jobs of what changed are put in again, the rest keep their next
        run times. Runs every RELOAD_EVERY; True when something changed."""
        letters = self._letters()
        before = [_seen(one) for one in self.letters.values()]
        if [_seen(one) for one in letters.values()] == before:
            return False
        self.letters = letters
        wanted = self.wanted()
        for old in self.scheduler.get_jobs(jobstore="default"):
            if old.id not in wanted:
                self.scheduler.remove_job(old.id, jobstore="default")
                log.info("%s: its newsletter is gone, so is the job", old.name)
        for job_id, (func, trigger, name, newsletter_id) in wanted.items():
            kept = self.scheduler.get_job(job_id, jobstore="default")
            if kept is not None and repr(kept.trigger) == repr(trigger):
                continue
            run_at = trigger.get_next_fire_time(None, now)
            self.scheduler.add_job(
                func, trigger, args=(newsletter_id,), id=job_id, name=name,
                jobstore="default", replace_existing=True, next_run_time=run_at,
            )  # fmt: skip
            zone = self.letters[newsletter_id].settings.timezone
            log.info("next %s: %s (the newsletters changed)", name, describe(run_at, zone))
        return True

    def _reload_now(self) -> None:
        try:
            self.reload(self.clock())
        except Exception:  # the next minute tries again; the jobs as they were still run
            log.exception("the newsletters could not be read again")

    def wanted(self) -> dict[str, tuple[Callable[[int], None], CronTrigger, str, int]]:
        """Each newsletter's send, and its reminder where it has one (a weekly send's,
        the day before; a daily one has none)."""
        jobs: dict[str, tuple[Callable[[int], None], CronTrigger, str, int]] = {}
        for letter in self.letters.values():
            settings, zone = letter.settings, letter.settings.timezone
            jobs[letter.job_id(SEND_JOB)] = (
                scheduled_send, cron_trigger(settings.send_at, zone), "send" + letter.label,
                letter.newsletter_id,
            )  # fmt: skip
            if settings.remind_at is not None and settings.send_at.weekday is not None:
                jobs[letter.job_id(REMIND_JOB)] = (
                    scheduled_reminder, cron_trigger(settings.remind_at, zone),
                    "reminder" + letter.label, letter.newsletter_id,
                )  # fmt: skip
        return jobs

    def install(self, now: datetime) -> dict[str, datetime]:
        """Put the jobs in the store. A job whose schedule is unchanged keeps its stored
        next run time, so a run missed while no scheduler was up is found (and run late
        within the grace, or reported). Returns each job's next run time, by its name."""
        self.store.start(self.scheduler, "default")  # to read what an earlier process left
        wanted = self.wanted()
        for stale in self.store.get_all_jobs():
            if stale.id not in wanted:
                self.store.remove_job(stale.id)
        planned = {}
        for job_id, (func, trigger, name, newsletter_id) in wanted.items():
            old = self.store.lookup_job(job_id)
            keep = old is not None and repr(old.trigger) == repr(trigger)
            run_at = old.next_run_time if keep and old is not None else None
            run_at = run_at or trigger.get_next_fire_time(None, now)
            planned[name] = run_at
            self.scheduler.add_job(
                func, trigger, args=(newsletter_id,), id=job_id, name=name,
                replace_existing=True, next_run_time=run_at,
            )  # fmt: skip
        return planned

    def resume_interrupted(self, now: datetime, planned: dict[str, datetime]) -> list[int]:
        """A scheduler that died mid-send (or before it began) already moved its job to
        the next send day; if the send day's issue is still approved or sending within the
        grace, run the send once more now: the ledger makes it a resume. Returns the
        newsletters resumed."""
        resumed = []
        for letter in self.letters.values():
            settings = letter.settings
            fire = last_fire(settings.send_at, settings.timezone, now)
            due = planned["send" + letter.label]
            if due <= now or now - fire > settings.misfire_grace:
                continue  # the job itself is due (and runs), or it is too late
            day = fire.astimezone(settings.timezone).date()
            issue = issue_of_day(self.desk.engine, day, letter.newsletter_id)
            if issue is None or issue.status not in ("approved", "sending"):
                continue
            log.info("issue %s for %s is %s: resuming its send", issue.id, issue.send_date,
                     issue.status)  # fmt: skip
            self.scheduler.add_job(
                scheduled_send, args=(letter.newsletter_id,), jobstore="transient",
                id=letter.job_id("resume-send"),
            )  # fmt: skip
            resumed.append(letter.newsletter_id)
        return resumed

    def fire(self, kind: str, newsletter_id: int = 1) -> JobResult | None:
        """Run a newsletter's send or reminder now (what its stored job calls)."""
        letter = self.letters.get(newsletter_id)
        if letter is None:  # removed since the job was stored
            log.warning("a %s for newsletter %s, which is gone: skipped", kind, newsletter_id)
            return None
        now, settings = self.clock(), letter.settings
        if kind == SEND_JOB:
            fire = last_fire(settings.send_at, settings.timezone, now)
            day = fire.astimezone(settings.timezone).date()
            log.info("send%s for %s: started", letter.label, day)
            patience = fire + settings.misfire_grace - now
            result = letter.job.send(day, patience=patience)
        else:
            assert settings.remind_at is not None
            fire = last_fire(settings.remind_at, settings.timezone, now)
            log.info("reminder%s: started", letter.label)
            result = letter.job.remind(fire)
        for line in result.lines():
            log.info("%s", line)
        if kind == SEND_JOB and result.outcome in ("paused", "incomplete"):
            self._follow_up(letter, fire, result)
        self._log_next(letter, kind)
        return result

    def _follow_up(self, letter: Letter, fire: datetime, result: JobResult) -> None:
        """A send that paused (relays down) or left readers deferred: the editors hear of it
        once, and the job runs again every few minutes while the grace lasts."""
        settings = letter.settings
        day = fire.astimezone(settings.timezone).date()
        subject = f"Send {result.outcome} for {day:%A %d %B}: {result.message}"
        body = (
            f"{result.message}\n\nThe scheduler tries again every {RETRY_EVERY.seconds // 60} "
            f"minutes until {describe(fire + settings.misfire_grace, settings.timezone)}"
            f". To resume it by hand: python send.py --now{letter.job.named}\n"
        )
        log.warning("%s", letter.job.alert(result.outcome, day, subject, body, dry_run=False))
        again = self.clock() + RETRY_EVERY
        if again < fire + settings.misfire_grace and not self.stop.is_set():
            self.scheduler.add_job(
                scheduled_send, "date", run_date=again, args=(letter.newsletter_id,),
                id=letter.job_id("retry-send"), jobstore="transient", replace_existing=True,
            )  # fmt: skip
            log.info("send%s for %s: tried again at %s", letter.label, day,
                     describe(again, settings.timezone))  # fmt: skip

    def _log_next(self, letter: Letter, kind: str) -> None:
        """From the trigger, not the scheduler: asking the scheduler while it shuts down
        would wait for the lock its shutdown holds until this very job ends."""
        settings = letter.settings
        at = settings.send_at if kind == SEND_JOB else settings.remind_at
        if at is not None:
            name = ("send" if kind == SEND_JOB else "reminder") + letter.label
            upcoming = next_fire(at, settings.timezone, self.clock() + timedelta(seconds=1))
            log.info("next %s: %s", name, describe(upcoming, settings.timezone))

    def _letter_of(self, job_id: str) -> tuple[str, Letter | None]:
        kind = job_id.partition(":")[0]
        for letter in self.letters.values():
            if letter.job_id(kind) == job_id:
                return kind, letter
        return kind, None

    def _missed(self, event: JobExecutionEvent) -> None:
        kind, letter = self._letter_of(event.job_id)
        if letter is None:
            return
        if kind != SEND_JOB:
            log.warning("the reminder%s due %s was missed; skipped", letter.label,
                        event.scheduled_run_time)  # fmt: skip
            return
        result = letter.job.missed(event.scheduled_run_time)
        log.warning("send%s missed: %s", letter.label, result.message)
        self._log_next(letter, kind)

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
        jobs.firing = self.fire
        previous = {s: signal.signal(s, self._ask_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            now = self.clock()
            planned = self.install(now)
            zones = {name: letter.settings.timezone for letter in self.letters.values()
                     for name in ("send" + letter.label, "reminder" + letter.label)}  # fmt: skip
            for name, run_at in planned.items():
                when = describe(run_at, zones[name])
                late = " (missed while no scheduler ran: handled now)" if run_at < now else ""
                log.info("next %s: %s%s", name, when, late)
            self.resume_interrupted(now, planned)
            self.scheduler.add_job(
                self._reload_now, "interval", seconds=RELOAD_EVERY.total_seconds(),
                id="reload-newsletters", jobstore="transient",
            )  # fmt: skip
            with beating(self.desk.engine, self.clock):  # the desk shows it runs
                self.scheduler.start()
                if self.closer is not None:
                    self.closer.join()
        finally:
            self.started.set()  # a shutdown thread waiting for a start that failed goes on
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            jobs.firing = None
        log.info("scheduler stopped")
