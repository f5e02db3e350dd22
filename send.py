"""The Friday entry point: `python send.py --now` sends this week's approved issue.

The long-lived scheduler (APScheduler) arrives in a later step; for now this runs
the same send as `newsletter send` for the issue dated this send day.
"""

from __future__ import annotations

import sys

import click

from newsletter.cli.common import DeskGroup, emit, json_option, pass_desk
from newsletter.db import now_utc
from newsletter.desk import Desk
from newsletter.errors import NotFound
from newsletter.issues import find_issue_id, send_day_on_or_after
from newsletter.sending import send_issue


@click.group(cls=DeskGroup, invoke_without_command=True)
@click.option("--now", "now_", is_flag=True, help="Send this send day's approved issue now.")
@click.option("--issue", help="Send this issue (id or date) instead.")
@click.option("--dry-run", is_flag=True, help="Render and report; send nothing.")
@json_option
@pass_desk
def main(desk: Desk, now_: bool, issue: str | None, dry_run: bool, as_json: bool) -> None:
    """Send the approved issue of this send day (Friday unless NEWSLETTER_SEND_AT says).

    \b
    Example:
        python send.py --now
    """
    if not now_:
        raise click.UsageError("the scheduler is not built yet: use --now")
    moment = now_utc()
    today = moment.astimezone(desk.settings.timezone).date()
    ref = issue or send_day_on_or_after(today, desk.settings.send_at.weekday).isoformat()
    with desk.engine.connect() as conn:
        try:
            issue_id = find_issue_id(conn, ref)
        except NotFound:
            raise NotFound(f"no issue for {ref}: nothing to send") from None
    transport = desk.transport()
    try:
        report = send_issue(
            issue_id, desk.engine, desk.settings, transport, now_utc, dry_run=dry_run
        )
    finally:
        transport.close()
    emit(as_json, report.as_dict(), report.lines())


if __name__ == "__main__":
    sys.exit(main())
