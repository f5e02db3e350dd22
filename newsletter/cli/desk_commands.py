"""`newsletter init`, `demo` and `policy publish`: setting up a desk."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from ..consent import publish_policy
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


@click.group("policy")
def policy() -> None:
    """Privacy policy versions: published once, never edited."""


@policy.command("publish")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--version", "version", required=True, help="The version id, e.g. 2026-11-01.")
@click.option(
    "--wording-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The sign-up checkbox label; default: wording.txt beside FILE.",
)
@json_option
@pass_desk
def publish(desk: Desk, file: Path, version: str, wording_file: Path | None, as_json: bool) -> None:
    """Publish a privacy policy text with its sign-up wording.

    \b
    Example:
        newsletter policy publish privacy/2026-12-01.md --version 2026-12-01
    """
    wording_path = wording_file or file.parent / "wording.txt"
    if not wording_path.is_file():
        raise click.UsageError(f"{wording_path}: the sign-up wording file is missing")
    with desk.engine.begin() as conn:
        published = publish_policy(
            conn,
            version,
            file.read_text(encoding="utf-8"),
            wording_path.read_text(encoding="utf-8"),
            now_utc(),
        )
    emit(
        as_json,
        {"version": published.version, "sha256": published.sha256},
        [f"policy {published.version} published, sha256 {published.sha256}"],
    )


COMMANDS = [init, demo, policy]
