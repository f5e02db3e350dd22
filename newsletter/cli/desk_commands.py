"""`newsletter init` and `demo`: setting up a desk."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from ..db import now_utc
from ..demo import run_demo
from ..desk import Desk, demo_settings, init_desk
from .common import emit, json_option, pass_desk


@click.command("init")
@json_option
@pass_desk
def init(desk: Desk, as_json: bool) -> None:
    """Create or upgrade the database and load the privacy policy texts.

    Run in an empty folder, it also lays out templates/, privacy/ and subscribers/
    for the site to customise. Running it again is harmless.

    \b
    Example:
        newsletter init
    """
    made, policies = init_desk(desk, now_utc())
    lines = [f"created {path}/" for path in made]
    lines += [f"privacy policy {p.version} ({p.sha256[:12]}…) is published" for p in policies]
    lines.append(f"database ready: {desk.settings.database_url}")
    emit(
        as_json,
        {"created": [str(p) for p in made], "policies": [p.version for p in policies]},
        lines,
    )


@click.command("demo")
@json_option
@pass_desk
def demo(desk: Desk, as_json: bool) -> None:
    """Sample articles and readers, this week's issue, and a send to the outbox.

    \b
    Example:
        newsletter demo && ls outbox/
    """
    demo_desk = Desk(demo_settings(desk.settings))
    result = run_demo(demo_desk, now_utc())
    lines = [f"issue {result.issue_id} for {result.send_date} is approved"]
    if result.report is not None:
        lines += result.report.lines()
    else:
        lines.append("it was sent before: nothing new to send")
    outbox = Path(result.outbox).resolve()
    lines.append(f"the messages are in {outbox}/ (open an .eml file in a mail program)")
    lines.append(f"preview it in a browser: newsletter preview {result.issue_id}")
    emit(as_json, asdict(result), lines)


COMMANDS = [init, demo]
