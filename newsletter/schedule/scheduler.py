"""The long-lived scheduler: APScheduler's BlockingScheduler with the jobs kept in the
app's database, the send resumed after a crash, a paused send tried again, and a clean
stop on SIGTERM. The work each job does is `schedule.job.FridayJob`'s."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable
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
from newsletter.store.engine import create_db_engine

log = logging.getLogger(__name__)


class FridayScheduler:
    """APScheduler's BlockingScheduler with its jobs in the app's database."""

    def __init__(self, desk: Desk, clock: Clock) -> None:
        self.desk, self.settings, self.clock = desk, desk.settings, clock
        self.stops = WorkerStop()
        self.stop = self.stops.asked
        self.job = FridayJob(desk, clock, self.stops)
        # its own engine: the scheduler disposes of it on shutdown while a send may still run
        self.store = SQLAlchemyJobStore(
            engine=create_db_engine(self.settings.database_url), tablename="scheduler_jobs"
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
        jobs.firing = self.fire
        previous = {s: signal.signal(s, self._ask_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            now = self.clock()
            planned = self.install(now)
            for name, run_at in planned.items():
                when = describe(run_at, self.settings.timezone)
                late = " (missed while no scheduler ran: handled now)" if run_at < now else ""
                log.info("next %s: %s%s", name, when, late)
            self.resume_interrupted(now, planned["send"])
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
