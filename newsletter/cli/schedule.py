"""`newsletter schedule` (and `python send.py`): the Friday scheduler and its one-shot modes."""

from __future__ import annotations

import logging
import sys

import click

from newsletter.app import Desk
from newsletter.cli.common import (
    DeskCommand,
    emit,
    json_option,
    newsletter_option,
    newsletter_settings,
    pass_desk,
)
from newsletter.cli.progress import SendProgress, stop_on_signals
from newsletter.cli.worker import run_worker
from newsletter.curation.issues import find_issue_id
from newsletter.errors import ConfigError, NewsletterError
from newsletter.publications import list_newsletters, of_issue, view
from newsletter.schedule.job import FridayJob, run_once
from newsletter.schedule.outcome import JobResult
from newsletter.schedule.scheduler import FridayScheduler
from newsletter.settings import Settings

EXITS = "exit codes: 0 sent, 3 nothing to do, 1 failed (editors alerted where it applies), 5 paused"


def log_to_stderr() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


@click.command("schedule", cls=DeskCommand, epilog=EXITS)
@click.option(
    "--now", "now_", is_flag=True, help="Send this send day's approved issue now, then exit."
)
@click.option("--issue", help="With --now: send this issue (id or date) instead.")
@click.option(
    "--once", is_flag=True, help="Run the send if it is due (within the grace), then exit."
)
@click.option(
    "--dry-run", is_flag=True, help="With --now or --once: say what would happen; send nothing."
)
@click.option(
    "--worker",
    "as_worker",
    is_flag=True,
    help="Be a send worker instead (newsletter worker): join sends under way; with --once, "
    "work what is there and exit.",
)
@newsletter_option
@json_option
@pass_desk
def schedule(
    desk: Desk,
    now_: bool,
    issue: str | None,
    once: bool,
    dry_run: bool,
    as_worker: bool,
    newsletter_slug: str | None,
    as_json: bool,
) -> None:
    """Send the approved issue every send day (NEWSLETTER_SEND_AT, default Friday 09:00,
    in NEWSLETTER_TIMEZONE); remind the editors the day before when it is not approved.

    Without options it runs until SIGTERM or SIGINT and prints the next run times: one
    send for each newsletter of the desk, on that newsletter's schedule. --once runs every
    newsletter's send that is due; --now sends the newsletter named (--newsletter SLUG)
    where the desk has several.

    \b
    Example:
        python send.py                   # the long-lived scheduler
        python send.py --once            # from cron, every few minutes
        python send.py --now --dry-run   # what would go out now
        python send.py --worker          # on other hosts: help send what was started
    """
    _check_options(now_, issue, once, dry_run, as_worker)
    log_to_stderr()
    if as_worker:
        run_worker(desk, once, as_json)
        return
    if not dry_run:
        desk.settings.require_secret()  # refuse at start, not on Friday morning
    if not (now_ or once):
        if desk.settings.clock is not None:  # APScheduler reads the system clock itself
            raise ConfigError("NEWSLETTER_CLOCK", "goes with --now or --once, not the scheduler")
        FridayScheduler(desk, desk.now).run()
        return
    if once and newsletter_slug is None:
        every = _every_newsletter(desk)
    elif issue is not None and newsletter_slug is None:
        every = [_of_issue(desk, issue)]  # the issue's newsletter: its lease, its alerts
    else:
        every = [newsletter_settings(desk, newsletter_slug)]
    results = [_run_now_or_once(desk, one, issue, once, dry_run) for one in every]
    if len(results) == 1:
        emit(as_json, results[0].as_dict(), results[0].lines())
    else:
        pairs = zip(every, results, strict=True)
        lines = [f"{one.site_name}: {line}" for one, r in pairs for line in r.lines()]
        emit(as_json, [r.as_dict() for r in results], lines)
    code = combined_exit(results)
    if code:
        raise SystemExit(code)


def combined_exit(results: list[JobResult]) -> int:
    """Several newsletters' runs as one exit code: a failure (1) or a pause (5) first;
    else 0 when any sent; else 3, nothing to do."""
    codes = {r.exit_code for r in results}
    for code in (1, 5, 0):
        if code in codes:
            return code
    return 3


def _of_issue(desk: Desk, issue: str) -> Settings:
    """The settings of the issue's newsletter; the desk's when there is no such issue
    (the job says so)."""
    with desk.engine.connect() as conn:
        try:
            return of_issue(conn, desk.settings, find_issue_id(conn, issue))
        except NewsletterError:
            return desk.settings


def _every_newsletter(desk: Desk) -> list[Settings]:
    with desk.engine.connect() as conn:
        return [view(desk.settings, one) for one in list_newsletters(conn)]


def _check_options(
    now_: bool, issue: str | None, once: bool, dry_run: bool, as_worker: bool
) -> None:
    if as_worker and (now_ or issue or dry_run):
        raise click.UsageError("--worker goes alone or with --once")
    if issue and not now_:
        raise click.UsageError("--issue goes with --now")
    if now_ and once:
        raise click.UsageError("--now and --once exclude each other")
    if dry_run and not (now_ or once):
        raise click.UsageError("--dry-run goes with --now or --once")


def _run_now_or_once(
    desk: Desk, settings: Settings, issue: str | None, once: bool, dry_run: bool
) -> JobResult:
    """One newsletter's run in the foreground: --once as cron would (only when due), or
    --now."""
    with stop_on_signals() as stop, SendProgress() as progress:
        job = FridayJob(desk, desk.now, stop, progress, settings=settings)
        if once:
            return run_once(job, desk.now(), dry_run)
        now = desk.now()
        today, day = now.astimezone(settings.timezone).date(), settings.send_day(now)
        # editors are alerted only on the send day itself: a run days before must not
        # use up the alert that the send time's own run would mail
        return job.send(day, issue_ref=issue, dry_run=dry_run, alert=day == today)
