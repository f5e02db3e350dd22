"""`newsletter editors add` and `sign-out`: desk accounts."""

from __future__ import annotations

import sys

import click

from newsletter.app import Desk
from newsletter.cli.common import emit, json_option, pass_desk
from newsletter.editors import ROLES, add_editor, sign_out_everywhere


@click.group("editors")
def group() -> None:
    """Accounts for the desk in the browser."""


@group.command("add")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default=None,
    help="editor: curates and approves; admin: also the readers' data. A new "
    "account is an editor, except the desk's first; an existing one keeps its own.",
)
@json_option
@pass_desk
def add(desk: Desk, email: str, password_stdin: bool, role: str | None, as_json: bool) -> None:
    """Create a desk account, or set a new password (which signs it out everywhere).

    \b
    Example:
        newsletter editors add editor@example.org
        newsletter editors add chief@example.org --role admin
    """
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with desk.engine.begin() as conn:
        editor = add_editor(conn, email, password, desk.now(), role)
    emit(as_json, {"id": editor.id, "email": editor.email, "role": editor.role},
         [f"{editor.role} {editor.email} can log in"])  # fmt: skip


@group.command("sign-out")
@click.argument("email")
@json_option
@pass_desk
def sign_out(desk: Desk, email: str, as_json: bool) -> None:
    """End every desk session of an editor at once (a lost laptop, a shared computer).

    \b
    Example:
        newsletter editors sign-out editor@example.org
    """
    with desk.engine.begin() as conn:
        ended = sign_out_everywhere(conn, email)
    plural = "" if ended == 1 else "s"
    emit(as_json, {"email": email, "sessions_ended": ended},
         [f"{email}: {ended} session{plural} ended; the next page asks for a login"])  # fmt: skip
