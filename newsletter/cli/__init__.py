"""The `newsletter` command: a thin click layer over the library.

Errors from the library become a one-line reason on stderr and an exit code at
this boundary, never deeper. A command's module is imported when that command runs:
`newsletter --help` and `--version` import none of them, and a command pays only for
what it uses (`python bench/startup.py` measures it).
"""

from __future__ import annotations

import importlib

import click

from newsletter.cli.common import DeskGroup

# name: (module under newsletter.cli, its attribute, the help line `newsletter --help`
# shows without importing it; a test keeps each line equal to the command's own)
COMMANDS = {
    "articles": (
        "articles",
        "group",
        "The article pool: import the site's feed, add by hand, list.",
    ),
    "bounces": (
        "bounces",
        "group",
        "Bounce and complaint mail: read it from mailboxes, or receive it over SMTP.",
    ),
    "db": ("database", "group", "The desk's database as a whole."),
    "demo": (
        "desk_commands",
        "demo",
        "Sample articles and readers, this week's issue, and a send to the outbox.",
    ),
    "editors": ("editors", "group", "Accounts for the desk in the browser."),
    "init": (
        "desk_commands",
        "init",
        "Create or upgrade the database and load the privacy policy texts.",
    ),
    "issue": (
        "issues",
        "group",
        "One issue per send day: create, pick and order articles, approve.",
    ),
    "newsletters": (
        "newsletters",
        "group",
        "The desk's newsletters: each with its readers, issues, schedule and sender.",
    ),
    "policy": ("readers", "policy", "Privacy policy versions: published once, never edited."),
    "preview": (
        "sending",
        "preview",
        "Serve the rendered issue on 127.0.0.1, re-rendered when a template changes.",
    ),
    "render": (
        "sending",
        "render",
        "Write issue.html, issue.txt, issue.eml and preflight.json for an issue.",
    ),
    "schedule": (
        "schedule",
        "schedule",
        "Send the approved issue every send day (NEWSLETTER_SEND_AT, default Friday 09:00, in "
        "NEWSLETTER_TIMEZONE); remind the editors the day before when it is not approved.",
    ),
    "secret": (
        "desk_commands",
        "secret",
        "The secret key that signs readers' links (made by init, kept in the database).",
    ),
    "send": (
        "sending",
        "send",
        "Send an approved issue to every active reader, once; run again to resume.",
    ),
    "serve": (
        "sending",
        "serve",
        "Serve the readers' pages (confirm, unsubscribe, view online, privacy) and the preview.",
    ),
    "status": (
        "sending",
        "status",
        "The delivery ledger's counts for one issue, and who is uncertain.",
    ),
    "subscribers": ("readers", "group", "Readers: sign up, import, list, export, forget."),
    "unsubscribe": (
        "readers",
        "unsubscribe_",
        "Withdraw a reader at once (a request by mail or phone).",
    ),
    "worker": (
        "worker",
        "worker",
        "Join every send under way (an issue in `sending`): reserve its readers in batches, "
        "send, record each outcome; run one on each host that should send.",
    ),
}


class LazyGroup(DeskGroup):
    """The commands by name, each imported only when it is the one asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[cmd_name]
        command: click.Command = getattr(
            importlib.import_module(f"newsletter.cli.{module}"), attribute
        )
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, click.Command(name, short_help=entry[2]).get_short_help_str(limit))
            for name, entry in sorted(COMMANDS.items())
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="newsletter-desk")
def cli() -> None:
    """The newsletter desk: curate the weekly issue, render it, send it on Friday.

    Settings come from NEWSLETTER_* environment variables and newsletter.toml.

    \b
    Example:
        newsletter demo
    """


def main() -> None:
    cli.main(prog_name="newsletter")
