"""`newsletter init` and `demo`: setting up a desk."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from newsletter.app import Desk, init_desk
from newsletter.cli.common import emit, json_option, pass_desk
from newsletter.demo import run_demo
from newsletter.settings.values import parse_duration
from newsletter.store.keys import kept_keys, rotate_key


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
    result = init_desk(desk, desk.now())
    lines = [f"created {path}/" for path in result.made]
    lines += [
        f"privacy policy {p.version} ({p.sha256[:12]}…) is published" for p in result.policies
    ]
    if result.key_made:
        lines.append("made the secret key that signs readers' links; the database keeps it")
    lines.append(f"database ready: {desk.settings.database_url}")
    document = {
        "created": [str(p) for p in result.made],
        "policies": [p.version for p in result.policies],
        "key_made": result.key_made,
    }
    emit(as_json, document, lines)


@click.command("demo")
@json_option
@pass_desk
def demo(desk: Desk, as_json: bool) -> None:
    """Sample articles and readers, this week's issue, and a send to the outbox.

    \b
    Example:
        newsletter demo && ls outbox/
    """
    result = run_demo(desk, desk.now())
    lines = [f"issue {result.issue_id} for {result.send_date} is approved"]
    if result.report is not None:
        lines += result.report.lines()
    else:
        lines.append("it was sent before: nothing new to send")
    outbox = Path(result.outbox).resolve()
    lines.append(f"the messages are in {outbox}/ (open an .eml file in a mail program)")
    lines.append(f"preview it in a browser: newsletter preview {result.issue_id}")
    emit(as_json, asdict(result), lines)


@click.group("secret")
def secret() -> None:
    """The secret key that signs readers' links (made by init, kept in the database)."""


@secret.command("rotate")
@click.option(
    "--keep",
    default="400d",
    show_default=True,
    help="How long links signed with the old key keep working (unsubscribe links in old mail).",
)
@json_option
@pass_desk
def rotate(desk: Desk, keep: str, as_json: bool) -> None:
    """Sign with a new key from now on; the old one still verifies links for --keep.

    \b
    Example:
        newsletter secret rotate --keep 400d
    """
    try:
        kept_for = parse_duration(keep)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--keep") from None
    with desk.engine.begin() as conn:
        given = desk.settings.secret_key
        if given and kept_keys(conn, desk.now())[:1] != (given,):
            raise click.UsageError(
                "NEWSLETTER_SECRET_KEY (or secret_key in newsletter.toml) overrides the kept "
                "key: change it where it is set"
            )
        until = rotate_key(conn, desk.now(), kept_for)
    line = f"a new key signs links from now on; links signed before work until {until:%Y-%m-%d}"
    emit(as_json, {"old_key_verifies_until": until.isoformat()}, [line])
