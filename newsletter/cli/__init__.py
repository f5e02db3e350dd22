"""The `newsletter` command: a thin click layer over the library.

Errors from the library become a one-line reason on stderr and an exit code at
this boundary, never deeper.
"""

from __future__ import annotations

import click

from newsletter.cli import (
    articles,
    bounces,
    database,
    desk_commands,
    editors,
    issues,
    readers,
    schedule,
    sending,
    worker,
)
from newsletter.cli.common import DeskGroup


@click.group(cls=DeskGroup)
@click.version_option(package_name="newsletter-desk")
def cli() -> None:
    """The newsletter desk: curate the weekly issue, render it, send it on Friday.

    Settings come from NEWSLETTER_* environment variables and newsletter.toml.

    \b
    Example:
        newsletter demo
    """


for module in (
    desk_commands,
    articles,
    issues,
    readers,
    sending,
    schedule,
    editors,
    bounces,
    database,
    worker,
):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    cli.main(prog_name="newsletter")
