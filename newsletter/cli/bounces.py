"""`newsletter bounces process` and `bounces listen`."""

from __future__ import annotations

import click

from newsletter.app import Desk
from newsletter.bounces.mailboxes import process_sources
from newsletter.cli.common import emit, json_option, pass_desk
from newsletter.errors import MailboxError


@click.group("bounces")
def group() -> None:
    """Bounce and complaint mail: read it from mailboxes, or receive it over SMTP."""


@group.command("process")
@click.argument("sources", nargs=-1, required=True)
@json_option
@pass_desk
def process(desk: Desk, sources: tuple[str, ...], as_json: bool) -> None:
    """Read bounces, complaints and auto-replies from Maildirs, mbox files or IMAP folders.

    Each message is read once: bounces and complaints change the readers they name,
    auto-replies are ignored, anything else is kept aside (the Unrecognised folder)
    and listed. Read messages move to the Processed folder; mbox files are only read.
    A message the mailbox would not move is listed as left in place (exit code 2).

    \b
    Example:
        newsletter bounces process /var/mail/bounces/Maildir
        newsletter bounces process 'imaps://bounces:secret@mail.example.org/INBOX'
    """
    report = process_sources(desk.engine, desk.settings, list(sources), desk.now())
    emit(as_json, report.as_dict(), report.lines())
    if report.left:  # recorded, but the mailbox did not take the move: someone should look
        count = len(report.left)
        where = report.left[0].split(": ", 1)[0]
        raise MailboxError(where, f"{count} message{'s' * (count > 1)} read but left in place")


@group.command("listen")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, required=True)
@pass_desk
def listen(desk: Desk, host: str, port: int) -> None:
    """Receive bounce mail over SMTP for NEWSLETTER_BOUNCE_ADDRESS (and its +token forms).

    Point the bounce domain's MX here (through a port 25 forward). Ctrl-C stops.

    \b
    Example:
        newsletter bounces listen --host 0.0.0.0 --port 2525
    """
    from newsletter.bounces.listener import start_listener
    from newsletter.cli.progress import stop_on_signals

    controller = start_listener(desk.engine, desk.settings, host, port)
    click.echo(f"taking bounce mail for {desk.settings.bounce_address} on {host}:{port}")
    try:
        with stop_on_signals() as stop:
            while not stop.wait(1.0):
                pass
    finally:
        controller.stop()
    emit(False, None, controller.handler.report.lines())
