"""What every command shares: the Desk, JSON output, errors turned into exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import update_wrapper
from typing import TYPE_CHECKING, Any, TypeVar

import click

from newsletter.errors import ConfigError, NewsletterError
from newsletter.settings import Settings, load_settings

if TYPE_CHECKING:
    from newsletter.app import Desk

MAKES_THE_DATABASE = {"init", "demo"}  # the commands that may create the SQLite file

F = TypeVar("F", bound=Callable[..., Any])


class DeskError(click.ClickException):
    def __init__(self, error: NewsletterError) -> None:
        super().__init__(str(error))
        setattr(self, "exit_code", error.exit_code)  # noqa: B010 - a ClassVar in click's stubs


class DeskGroup(click.Group):
    """Turns NewsletterError into a one-line reason and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as error:
            raise DeskError(error) from None


class DeskCommand(click.Command):
    """A command run on its own (send.py), with the same error handling as DeskGroup."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as error:
            raise DeskError(error) from None


def pass_desk(func: F) -> F:
    """Give a command the Desk, built from settings only when the command runs."""

    @click.pass_context
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        from newsletter.app import Desk, database_exists  # what a command that runs pays for

        root = ctx.find_root()
        if not isinstance(root.obj, Desk):
            settings = load_settings()
            if ctx.info_name not in MAKES_THE_DATABASE and not database_exists(
                settings.database_url
            ):  # connecting would leave an empty file, then fail on a missing table
                raise DeskError(
                    ConfigError(
                        "NEWSLETTER_DATABASE_URL",
                        f"{settings.database_url} does not exist yet: run `newsletter init`",
                    )
                )
            root.obj = Desk(settings).use_kept_key()
        return ctx.invoke(func, root.obj, *args, **kwargs)

    return update_wrapper(wrapper, func)  # type: ignore[return-value]


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(func)


def emit(as_json: bool, document: Any, lines: list[str]) -> None:
    """Print a JSON document on stdout, or lines for a person."""
    if as_json:
        click.echo(json.dumps(document, ensure_ascii=False, indent=2, default=str))
    else:
        for line in lines:
            click.echo(line)


def newsletter_option(func: F) -> F:
    return click.option(
        "--newsletter",
        "newsletter_slug",
        metavar="SLUG",
        help="The newsletter (newsletter newsletters list); needed only where the desk has "
        "more than one.",
    )(func)


def newsletter_settings(desk: Desk, slug: str | None) -> Settings:
    """The settings as the newsletter named (or the only one) sees them."""
    from newsletter.publications import choose, view

    with desk.engine.connect() as conn:
        return view(desk.settings, choose(conn, slug))
