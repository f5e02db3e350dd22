"""What the person at the terminal sees while a send runs, and how they stop it."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import monotonic
from types import FrameType
from typing import Any

import click
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from newsletter.delivery.report import SendReport


@contextmanager
def stop_on_signals(then: Callable[[], None] | None = None) -> Iterator[threading.Event]:
    """SIGINT or SIGTERM asks the send to stop cleanly: in-flight messages finish, the
    rest is put back. A second SIGINT stops at once. `then` is called on each request."""
    stop = threading.Event()
    previous: dict[int, Any] = {}

    def ask(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        if then is not None:
            then()
        click.echo("stopping: finishing the messages in flight…", err=True)

    for signum in (signal.SIGINT.value, signal.SIGTERM.value):
        previous[signum] = signal.signal(signum, ask)
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class SendProgress:
    """A rich progress bar on a terminal; a plain log line every few seconds otherwise."""

    def __init__(self, every: float = 5.0) -> None:
        self.tty = sys.stderr.isatty()
        self.every, self.last = every, 0.0
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> SendProgress:
        self.last = monotonic()  # the first log line after `every`: a short send logs none
        if self.tty:
            self.bar = Progress(
                TextColumn("[bold]issue {task.fields[issue]}"),
                BarColumn(),
                TextColumn("{task.completed:,}/{task.total:,}"),
                TextColumn("failed {task.fields[failed]} deferred {task.fields[deferred]}"),
                TextColumn("{task.fields[rate]:,.0f}/s"),
                TimeRemainingColumn(),
                transient=True,
            )
            self.bar.start()
        return self

    def __call__(self, report: SendReport) -> None:
        done = report.sent + report.already_sent + report.failed + report.skipped
        if self.bar is not None:
            fields: dict[str, Any] = {
                "issue": report.issue_id,
                "failed": report.failed,
                "deferred": report.deferred,
                "rate": report.rate,
            }
            if self.task is None:
                self.task = self.bar.add_task("send", total=report.audience, **fields)
            self.bar.update(self.task, completed=done, total=report.audience, **fields)
        elif monotonic() - self.last >= self.every:
            self.last = monotonic()
            click.echo(
                f"issue {report.issue_id}: {done}/{report.audience} done, sent {report.sent}, "
                f"failed {report.failed}, deferred {report.deferred}, {report.rate:.0f}/s",
                err=True,
            )

    def __exit__(self, *_exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
