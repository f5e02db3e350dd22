"""`newsletter render`, `preview`, `send` and `status`."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import click

from newsletter.app import Desk
from newsletter.bounces.record import check_last_issue
from newsletter.cli.common import emit, json_option, pass_desk
from newsletter.cli.progress import SendProgress, stop_on_signals
from newsletter.compose.copies import preview_copy
from newsletter.compose.messages import build_message, message_id
from newsletter.curation.issues import get_issue
from newsletter.delivery.report import SendOptions
from newsletter.delivery.send import send_issue, send_test, start_send
from newsletter.reports import send_status
from newsletter.schedule.alerts import Alert, alert_editors
from newsletter.schedule.outcome import trouble_alert
from newsletter.settings.values import parse_duration
from newsletter.transport.base import opened


@click.command("render")
@click.argument("issue")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, file_okay=False))
@click.option("--as", "as_email", help="Render the copy this subscriber gets.")
@json_option
@pass_desk
def render(desk: Desk, issue: str, out: Path, as_email: str | None, as_json: bool) -> None:
    """Write issue.html, issue.txt, issue.eml and preflight.json for an issue.

    \b
    Example:
        newsletter render 3 --out /tmp/issue-3 --as anna@example.org
    """
    copy = preview_copy(desk.engine, desk.settings, issue, as_email, desk.now())
    out.mkdir(parents=True, exist_ok=True)
    msgid = message_id(copy.issue_id, copy.reader.id, copy.composed.sender)
    eml = build_message(copy.composed.prepared, copy.reader, copy.values, msgid)
    (out / "issue.html").write_text(copy.html, encoding="utf-8")
    (out / "issue.txt").write_text(copy.text, encoding="utf-8")
    (out / "issue.eml").write_bytes(eml)
    preflight = copy.composed.preflight
    (out / "preflight.json").write_text(json.dumps(preflight.as_dict(), indent=2), "utf-8")
    lines = [f"wrote {out}/issue.html, issue.txt, issue.eml, preflight.json", *preflight.lines()]
    emit(as_json, {"out": str(out), "preflight": preflight.as_dict()}, lines)
    if preflight.errors:
        raise SystemExit(1)


@click.command("preview")
@click.argument("issue")
@click.option("--as", "as_email", help="Preview the copy this subscriber gets.")
@click.option("--port", default=8001, show_default=True)
@pass_desk
def preview(desk: Desk, issue: str, as_email: str | None, port: int) -> None:
    """Serve the rendered issue on 127.0.0.1, re-rendered when a template changes.

    \b
    Example:
        newsletter preview 3 --as anna@example.org
    """
    from newsletter.web import preview_app

    with desk.engine.connect() as conn:
        issue_id = get_issue(conn, issue).id
    app = preview_app(desk.settings, port)
    query = "?" + urlencode({"as": as_email}) if as_email else ""
    click.echo(f"preview of issue {issue_id}: http://127.0.0.1:{port}/preview/{issue_id}{query}")
    app.run(host="127.0.0.1", port=port, debug=False, use_reloader=False)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@pass_desk
def serve(desk: Desk, host: str, port: int) -> None:
    """Serve the readers' pages (confirm, unsubscribe, view online, privacy) and the preview.

    For production put a WSGI server in front: waitress-serve --call newsletter.web:wsgi

    \b
    Example:
        newsletter serve --port 8000
    """
    from newsletter.web import create_app

    app = create_app(desk.settings)  # refuses to start without a key
    app.config["NOTICES"].wake()  # what a stopped process left queued
    here = f"http://{host}:{port}"
    click.echo(f"serving on {here}/ (public address {desk.settings.base_url})")
    click.echo(f"readers sign up at {here}/subscribe; editors work at {here}/desk/")
    app.run(host=host, port=port, debug=False, use_reloader=False)


@click.command("send")
@click.argument("issue")
@click.option("--dry-run", is_flag=True, help="Render and report; send nothing.")
@click.option("--test-to", multiple=True, help="Send a marked test copy here instead.")
@click.option("--resend-uncertain", is_flag=True, help="Also send rows a crash left uncertain.")
@click.option(
    "--wait",
    "wait",
    default="10m",
    show_default=True,
    help="How long to stay for deferred readers to come due (0 to leave at once).",
)
@click.option(
    "--force", is_flag=True, help="Send despite the last issue's complaint or bounce rate."
)
@click.option(
    "--start-only",
    is_flag=True,
    help="Snapshot the readers and mark the issue sending; `newsletter worker`s send it.",
)
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Send even with no active reader (the issue is then sent, to nobody, for good).",
)
@json_option
@pass_desk
def send(
    desk: Desk,
    issue: str,
    dry_run: bool,
    test_to: tuple[str, ...],
    resend_uncertain: bool,
    wait: str,
    force: bool,
    start_only: bool,
    allow_empty: bool,
    as_json: bool,
) -> None:
    """Send an approved issue to every active reader, once; run again to resume.

    Ctrl-C (or SIGTERM) stops cleanly: messages in flight finish, the rest waits
    for the next run.

    \b
    Example:
        newsletter send 3 --test-to editor@example.org
        newsletter send 3
        newsletter send 3 --start-only   # then `newsletter worker` on each host
    """
    if test_to:
        _send_tests(desk, issue, test_to, as_json)
        return
    options = replace(SendOptions.from_settings(desk.settings), wait_for_retries=_patience(wait))
    with desk.engine.connect() as conn:
        found = get_issue(conn, issue)
        if not force and not dry_run and found.status == "approved":
            check_last_issue(conn, found.id)  # a send under way is resumed regardless
    if start_only and not dry_run:
        _start_only(desk, found.id, allow_empty, as_json)
        return
    with stop_on_signals() as stop, SendProgress() as progress:
        report = send_issue(
            issue,
            desk.engine,
            desk.settings,
            desk.transports(),
            desk.now,
            dry_run=dry_run,
            resend_uncertain=resend_uncertain,
            allow_empty=allow_empty,
            options=options,
            stop=stop,
            progress=progress,
        )
    emit(as_json, report.as_dict(), report.lines())
    trouble = trouble_alert(found, report)
    if trouble is not None:  # the editors hear of it as from the scheduler
        settings = desk.settings_of(found.newsletter_id)
        alert = Alert("failures", found.send_date, *trouble)
        alert_editors(alert, desk.engine, settings, desk.transport, desk.now())
    if report.paused:
        raise SystemExit(5)
    if report.with_failures:
        raise SystemExit(1)


def _send_tests(desk: Desk, issue: str, addresses: tuple[str, ...], as_json: bool) -> None:
    with opened(desk.transport) as transport:
        ids = send_test(issue, addresses, desk.engine, desk.settings, transport, desk.now())
    emit(as_json, {"test_message_ids": ids}, [f"test sent to {', '.join(addresses)}"])


def _patience(wait: str) -> timedelta:
    """--wait: how long the send stays for deferred readers to come due."""
    try:
        return parse_duration(wait) if wait.strip() != "0" else timedelta(0)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--wait") from None


def _start_only(desk: Desk, issue_id: int, allow_empty: bool, as_json: bool) -> None:
    started, readers = start_send(desk.engine, issue_id, desk.now(), allow_empty=allow_empty)
    line = f"issue {started.id} is {started.status}: {readers} readers; workers send it"
    emit(as_json, {"issue": started.id, "status": started.status, "audience": readers}, [line])


@click.command("status")
@click.argument("issue")
@json_option
@pass_desk
def status(desk: Desk, issue: str, as_json: bool) -> None:
    """The delivery ledger's counts for one issue, and who is uncertain.

    \b
    Example:
        newsletter status 3 --json
    """
    with desk.engine.connect() as conn:
        report = send_status(conn, issue)
    found, document, later = report.issue, report.document, report.hygiene
    lines = [f"issue {found.id} for {found.send_date}: {found.status}"]
    lines += [f"{name:>10}: {count}" for name, count in sorted(document["counts"].items())]
    if document["reasons"]:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(document["reasons"].items()))
        lines.append(f"not reached, by reason: {reasons}")
    lines += [f"failed: {f['reader']} ({f['reason'] or 'no reason'}): {f['reply']}"
              for f in document["failures"]]  # fmt: skip
    lines += ["later, by bounce mail:", *later.lines()]
    if later.problem():
        lines.append(f"warning: {later.problem()}; the next send waits for --force")
    lines += [f"uncertain: {email}" for email in document["uncertain"]]
    emit(as_json, document, lines)
