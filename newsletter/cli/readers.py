"""`newsletter subscribers …`, `unsubscribe` and `policy publish`: readers and their consent."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from newsletter.app import Desk
from newsletter.cli.common import (
    emit,
    json_option,
    newsletter_option,
    newsletter_settings,
    pass_desk,
)
from newsletter.delivery.notices import NoticeReport, send_notices
from newsletter.readers.access import export_csv, export_subscriber, forget
from newsletter.readers.consent import Evidence, publish_policy
from newsletter.readers.importing import import_csv
from newsletter.readers.optin import Limits, SignUp, sign_up
from newsletter.readers.subscribers import (
    STATUSES,
    Mail,
    count_by_status,
    get_subscriber,
    list_subscribers,
    request_reconsent,
    unsubscribe,
)
from newsletter.transport.base import opened


def mail_out(desk: Desk, mails: list[Mail]) -> NoticeReport:
    with opened(desk.transport) as transport:
        return send_notices(mails, desk.engine, desk.settings, transport, desk.now())


@click.group("subscribers")
def group() -> None:
    """Readers: sign up, import, list, export, forget."""


@group.command("add")
@click.argument("email")
@click.option("--name", default="")
@click.option("--consent", is_flag=True, help="The person agreed to the current privacy policy.")
@click.option("--source", default="cli", show_default=True, help="Where they agreed (a URL…).")
@click.option("--ip", help="The address they agreed from, when known.")
@newsletter_option
@json_option
@pass_desk
def add(
    desk: Desk,
    email: str,
    name: str,
    consent: bool,
    source: str,
    ip: str | None,
    newsletter_slug: str | None,
    as_json: bool,
) -> None:
    """Sign a person up: records their consent and mails the double opt-in link.

    \b
    Example:
        newsletter subscribers add anna@example.org --name "Anna" --consent
        newsletter subscribers add anna@example.org --consent --newsletter daily
    """
    chosen = newsletter_settings(desk, newsletter_slug).newsletter_id
    request = SignUp(email, consent, name, Evidence(source=source, ip=ip), chosen)
    with desk.engine.begin() as conn:
        mail = sign_up(
            conn,
            request,
            Limits.from_settings(desk.settings),
            desk.settings.require_secret(),
            desk.now(),
        )
    report = mail_out(desk, [mail] if mail else [])
    lines = ["if the address can be subscribed, a confirmation link is on its way"]
    emit(as_json, {"ok": True, "failures": report.failures}, lines + list(report.failures))


@group.command("import")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--pending", is_flag=True, help="Rows without evidence get a double opt-in mail.")
@newsletter_option
@json_option
@pass_desk
def import_(
    desk: Desk, file: Path, pending: bool, newsletter_slug: str | None, as_json: bool
) -> None:
    """Import readers from CSV: email, name, consented_at, source, ip, policy_version.

    \b
    Example:
        newsletter subscribers import readers.csv --pending
    """
    chosen = newsletter_settings(desk, newsletter_slug).newsletter_id
    result = import_csv(
        desk.engine, file, pending=pending, secret=desk.settings.secret_key, now=desk.now(),
        newsletter_id=chosen,
    )  # fmt: skip
    report = mail_out(desk, result.mails)
    lines = [
        f"{file}: {result.rows} rows: {result.added} added, {result.pending} pending opt-in, "
        f"{result.inactive} added as not mailed (their status), "
        f"{result.already_present} already present, {result.duplicates} duplicates merged, "
        f"{result.suppressed} suppressed, {len(result.problems)} refused",
        *(f"  line {p.line}: {p.reason}" for p in result.problems),
        *report.failures,
    ]
    emit(as_json, {**result.as_dict(), "mail_failures": report.failures}, lines)


@group.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only readers with this status.")
@click.option("--search", help="Part of the address.")
@click.option("--limit", default=100, show_default=True)
@newsletter_option
@json_option
@pass_desk
def list_(
    desk: Desk,
    status: str | None,
    search: str | None,
    limit: int,
    newsletter_slug: str | None,
    as_json: bool,
) -> None:
    """List readers and the counts by status (of one newsletter's, where the desk has
    several).

    \b
    Example:
        newsletter subscribers list --status pending
    """
    chosen = newsletter_settings(desk, newsletter_slug).newsletter_id
    with desk.engine.connect() as conn:
        counts = count_by_status(conn, chosen)
        found = list_subscribers(conn, status, search, limit, newsletter_id=chosen)
    lines = [", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no readers yet"]
    lines += [f"{s.id:>6}  {s.status:<12} {s.email}  {s.name}" for s in found]
    emit(as_json, {"counts": counts, "subscribers": [asdict(s) for s in found]}, lines)


@group.command("export")
@click.argument("email", required=False)
@click.option("--csv", "as_csv", is_flag=True, help="The whole list as CSV.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="Write here.")
@newsletter_option
@json_option
@pass_desk
def export(
    desk: Desk,
    email: str | None,
    as_csv: bool,
    out: Path | None,
    newsletter_slug: str | None,
    as_json: bool,
) -> None:
    """Everything held about one reader (JSON), or the whole list (--csv).

    The reader's export covers every newsletter they subscribe to; the list is one
    newsletter's where the desk has several.

    \b
    Example:
        newsletter subscribers export anna@example.org --json
        newsletter subscribers export --csv --out readers.csv
    """
    if bool(email) == as_csv:
        raise click.UsageError("give either EMAIL or --csv")
    with desk.engine.connect() as conn:
        text = (
            export_csv(conn, newsletter_settings(desk, newsletter_slug).newsletter_id)
            if as_csv
            else json.dumps(
                export_subscriber(conn, email or ""), indent=2, ensure_ascii=False, default=str
            )
        )
    if out:
        out.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=not text.endswith("\n"))


@group.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask.")
@json_option
@pass_desk
def forget_(desk: Desk, email: str, yes: bool, as_json: bool) -> None:
    """Erase a reader's personal data; the address is kept only as a keyed hash.

    \b
    Example:
        newsletter subscribers forget anna@example.org --yes
    """
    if not yes:
        click.confirm(f"Erase {email} for good?", abort=True)
    with desk.engine.begin() as conn:
        subscriber_id = forget(conn, email, desk.now())
    emit(as_json, {"erased": subscriber_id}, [f"subscriber {subscriber_id} erased"])


@click.command("unsubscribe")
@click.argument("email")
@click.option("--channel", default="request by mail", show_default=True)
@newsletter_option
@json_option
@pass_desk
def unsubscribe_(
    desk: Desk, email: str, channel: str, newsletter_slug: str | None, as_json: bool
) -> None:
    """Withdraw a reader at once (a request by mail or phone).

    Where the desk has several newsletters, from the one named.

    \b
    Example:
        newsletter unsubscribe anna@example.org
        newsletter unsubscribe anna@example.org --newsletter daily
    """
    chosen = newsletter_settings(desk, newsletter_slug).newsletter_id
    with desk.engine.begin() as conn:
        found = get_subscriber(conn, email, chosen)
        changed = unsubscribe(conn, found.id, Evidence(source=channel), desk.now())
    line = f"{email} is unsubscribed" if changed else f"{email} was not subscribed"
    emit(as_json, {"changed": changed}, [line])


@click.group("policy")
def policy() -> None:
    """Privacy policy versions: published once, never edited."""


@policy.command("publish")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--version", "version", required=True, help="The version id, e.g. 2026-12-01.")
@click.option(
    "--wording-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The sign-up checkbox label; default: wording.txt beside FILE.",
)
@click.option("--reconsent", is_flag=True, help="Readers must agree again before more mail.")
@json_option
@pass_desk
def publish(
    desk: Desk, file: Path, version: str, wording_file: Path | None, reconsent: bool, as_json: bool
) -> None:
    """Publish a privacy policy text with its sign-up wording.

    \b
    Example:
        newsletter policy publish privacy/2026-12-01.md --version 2026-12-01 --reconsent
    """
    wording_path = wording_file or file.parent / "wording.txt"
    if not wording_path.is_file():
        raise click.UsageError(f"{wording_path}: the sign-up wording file is missing")
    now = desk.now()
    with desk.engine.begin() as conn:
        text = file.read_text(encoding="utf-8")
        wording = wording_path.read_text(encoding="utf-8")
        published = publish_policy(conn, version, text, wording, now)
        mails = (
            request_reconsent(conn, published, desk.settings.require_secret(), now)
            if (reconsent)
            else []
        )
    report = mail_out(desk, mails)
    lines = [f"policy {published.version} published, sha256 {published.sha256}"]
    if reconsent:
        lines.append(f"{len(mails)} readers asked to agree again; {report.sent} notices sent")
    document = {
        "version": published.version,
        "sha256": published.sha256,
        "reconsent_requested": len(mails),
        "failures": report.failures,
    }
    emit(as_json, document, lines + list(report.failures))
