"""`newsletter worker` (and `python send.py --worker`): join the sends under way."""

from __future__ import annotations

import click

from newsletter.app import Desk
from newsletter.cli.common import emit, json_option, pass_desk
from newsletter.cli.progress import SendProgress, stop_on_signals
from newsletter.delivery.report import SendReport
from newsletter.delivery.workers import Worker, WorkerStop
from newsletter.schedule.outcome import EXIT_CODES


def run_worker(desk: Desk, once: bool, as_json: bool) -> None:
    """Work every send under way until SIGTERM/SIGINT (or, with `once`, until none is left)."""
    desk.settings.require_secret()
    stop = WorkerStop()

    def said(report: SendReport) -> None:
        if not as_json:
            emit(False, None, report.lines())

    with stop_on_signals(then=stop.set), SendProgress() as progress:
        worker = Worker(
            desk.engine, desk.settings, desk.transports(), desk.now, stop, progress, said
        )
        if not once:
            click.echo(f"worker: looking for sends every {desk.settings.worker_poll}", err=True)
        reports = worker.run(once=once)
    if not reports and not as_json:
        click.echo("no send under way with readers due")
    if as_json:
        emit(True, [r.as_dict() for r in reports], [])
    if any(r.paused for r in reports):  # send.py's exit codes
        raise SystemExit(EXIT_CODES["paused"])
    if once and not reports:
        raise SystemExit(EXIT_CODES["nothing"])


@click.command("worker")
@click.option("--once", is_flag=True, help="Work what is there now, then exit.")
@json_option
@pass_desk
def worker(desk: Desk, once: bool, as_json: bool) -> None:
    """Join every send under way (an issue in `sending`): reserve its readers in batches,
    send, record each outcome; run one on each host that should send. On PostgreSQL
    workers never take the same reader; on SQLite run one.

    Without --once it runs until SIGTERM or SIGINT, which stop it cleanly.

    \b
    Example:
        newsletter worker            # on each sending host
        newsletter worker --once     # from cron
    """
    run_worker(desk, once, as_json)
