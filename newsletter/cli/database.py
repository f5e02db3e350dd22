"""`newsletter db copy` and `db checksums`: moving a desk to another database, verified."""

from __future__ import annotations

import click

from newsletter.app import Desk
from newsletter.cli.common import emit, json_option, pass_desk
from newsletter.store.copy import TableSum, copy_database, open_target, read_snapshot, table_sums


@click.group("db")
def group() -> None:
    """The desk's database as a whole."""


def _lines(sums: list[TableSum]) -> list[str]:
    width = max(len(s.table) for s in sums)
    return [f"  {s.table:<{width}}  {s.rows:>9}  {s.sha256}" for s in sums]


def _document(source: str, target: str, sums: list[TableSum]) -> dict[str, object]:
    tables = [{"table": s.table, "rows": s.rows, "sha256": s.sha256} for s in sums]
    return {"from": source, "to": target, "tables": tables, "verified": True}


@group.command("copy")
@click.option("--to", "to_url", required=True, help="SQLAlchemy URL of the target database.")
@click.option("--replace", is_flag=True, help="Delete every row the target holds first.")
@json_option
@pass_desk
def copy(desk: Desk, to_url: str, replace: bool, as_json: bool) -> None:
    """Copy every table of the desk's database into another one, in one transaction, and
    check counts and checksums by reading the copy back. Stop the desk's writers first.

    \b
    Example:
        newsletter db copy --to postgresql+psycopg://desk@db.internal/newsletter
    """
    target = open_target(to_url)
    try:
        sums = copy_database(desk.engine, target, replace=replace)
    finally:
        target.dispose()
    source = desk.engine.url.render_as_string(hide_password=True)
    shown = target.url.render_as_string(hide_password=True)
    total = sum(s.rows for s in sums)
    emit(
        as_json,
        _document(source, shown, sums),
        [
            f"copied {source} to {shown}",
            *_lines(sums),
            f"verified: {len(sums)} tables, {total} rows, counts and checksums equal on both",
        ],
    )


@group.command("checksums")
@json_option
@pass_desk
def checksums(desk: Desk, as_json: bool) -> None:
    """Row count and sha256 of every table, comparable across SQLite and PostgreSQL.

    \b
    Example:
        NEWSLETTER_DATABASE_URL=postgresql+psycopg://desk@db.internal/newsletter \\
            newsletter db checksums
    """
    with desk.engine.connect() as conn, read_snapshot(conn) as conn:
        sums = table_sums(conn)
    document = [{"table": s.table, "rows": s.rows, "sha256": s.sha256} for s in sums]
    emit(as_json, document, _lines(sums))
