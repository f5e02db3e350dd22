"""`newsletter db copy`: a real SQLite desk (readers, their consent ledger with an erased
reader, a sent issue, a half-finished send, bounces, policies, an editor, alerts, the
scheduler's job) moved into a PostgreSQL schema of its own through the CLI, then read
back through the app's own functions."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from newsletter.app import Desk, init_desk
from newsletter.bounces.record import Policy as BouncePolicy
from newsletter.bounces.record import record_mail
from newsletter.bounces.verdict import Verdict
from newsletter.cli import cli
from newsletter.curation.articles import list_articles
from newsletter.curation.issues import (
    approve,
    get_issue,
    list_issues,
    new_issue,
    pick,
    set_fields,
    set_item,
    unpick,
)
from newsletter.delivery.ledger import counts, reserve, uncertain_readers
from newsletter.delivery.notice_queue import queue_mails
from newsletter.delivery.send import send_issue
from newsletter.editors import LoginRefused, add_editor, get_editor, log_in, open_session
from newsletter.readers.access import export_subscriber, forget
from newsletter.readers.consent import Evidence, current_policy, get_policy, publish_policy
from newsletter.readers.optin import Limits, SignUp, sign_up
from newsletter.readers.subscribers import add_active_reader, unsubscribe
from newsletter.readers.suppression import desk_key, is_suppressed
from newsletter.schedule.alerts import Alert, alert_editors
from newsletter.schedule.lease import take_lease
from newsletter.store import tables as db
from newsletter.store.copy import TableDigest, canonical, row_line, table_sums
from newsletter.transport.base import MemoryTransport

from .conftest import NOW, SECRET, approved_issue, postgres_schema, seed_readers

EDITOR, PASSWORD = "editor@example.org", "correct horse battery"
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"

pytestmark = pytest.mark.slow  # each test copies a whole desk between databases


@pytest.fixture
def target() -> Iterator[str]:
    yield from postgres_schema()


@pytest.fixture
def moved(desk: Desk, target: str) -> Iterator[Desk]:
    """The desk as it will run on the copy."""
    copied = Desk(replace(desk.settings, database_url=target))
    yield copied
    copied.engine.dispose()


def build_desk(desk: Desk) -> None:
    """Everything a desk that ran for a while holds, written by the app's own functions."""
    engine, settings = desk.engine, desk.settings
    _anna, tom, noname = seed_readers(engine)
    sent = approved_issue(engine)
    send_issue(sent.id, engine, settings, MemoryTransport(), lambda: NOW)
    verdict = Verdict("hard", addresses=("tom@example.org",), code="5.1.1",
                      diagnostic="550 5.1.1 <tom@example.org> unknown")  # fmt: skip
    with engine.begin() as conn:
        record_mail(conn, "a" * 64, verdict, "Maildir bounces/1", BouncePolicy(bounce_limit=9), NOW)
        forget(conn, tom, NOW)  # erased: the ledger keeps the blanked events and a hash
        unsubscribe(conn, noname, Evidence(source="https://news.example.org/u"), NOW)
        publish_policy(conn, "2027-01-01", "New text.\n", "I agree to the 2027 policy.", NOW)
        confirmation = sign_up(conn, SignUp("lena@example.org", True, "Лена Смирнова",
                             Evidence(source="https://example.org/", ip="198.51.100.7",
                                      user_agent=UA)), Limits(), SECRET, NOW)  # fmt: skip
        assert confirmation is not None
        queue_mails(conn, [confirmation], NOW)  # the web app's, not sent yet
        open_session(conn, add_editor(conn, EDITOR, PASSWORD, NOW), NOW)
        with pytest.raises(LoginRefused):
            log_in(conn, EDITOR, "wrong password!", "192.0.2.9", NOW)
        for name in ("Zeta", "alpha", "ключ"):  # text keys sort alike on both databases
            desk_key(conn, name)
        conn.execute(db.scheduler_jobs.insert().values(
            id="friday-send", next_run_time=1795424400.123456, job_state=bytes(range(256))))  # fmt: skip
        next_week = new_issue(conn, date(2026, 12, 4), NOW)
        pick(conn, next_week.id, [1, 2, 3], NOW)
        set_item(conn, next_week.id, 3, NOW, title="Своё название")
        unpick(conn, next_week.id, [3], NOW)  # kept aside with its own title
        set_fields(conn, next_week.id, NOW, subject="Неделя: вторая")
        approve(conn, next_week.id, NOW)
    alert = Alert("reminder", date(2026, 12, 4), "Issue of 4 December not approved", "Approve.")
    alert_editors(alert, engine, replace(settings, editors=(EDITOR,)), MemoryTransport, NOW)
    take_lease(engine, "send", "host-a:4242", NOW, timedelta(minutes=5))
    half_finished_send(desk, next_week.id)


def half_finished_send(desk: Desk, issue_id: int) -> None:
    """A send stopped before its first message, then one row taken by a worker."""
    stop = threading.Event()
    stop.set()
    send_issue(issue_id, desk.engine, desk.settings, MemoryTransport(), lambda: NOW, stop=stop)
    with desk.engine.begin() as conn:
        reserve(conn, issue_id, "host-b:99", 1, NOW)


def copy(desk: Desk, to: str, *extra: str) -> Result:
    return CliRunner().invoke(cli, ["db", "copy", "--to", to, *extra], obj=desk)


def every_row(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key))]
            for t in db.metadata.sorted_tables
        }


def as_the_app_reads_it(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        readers = conn.execute(sa.select(db.subscribers.c.id).order_by("id")).scalars().all()
        issues = list_issues(conn)
        policies = conn.execute(sa.select(db.policy_versions.c.version)).scalars().all()
        return {
            "readers": [export_subscriber(conn, r) for r in readers],
            "issues": [get_issue(conn, i.id) for i in issues],
            "ledgers": [(counts(conn, i.id), uncertain_readers(conn, i.id)) for i in issues],
            "policies": sorted((get_policy(conn, v) for v in policies), key=str),
            "current": current_policy(conn),
            "articles": list_articles(conn),
            "editor": get_editor(conn, 1),
            "tom suppressed": is_suppressed(conn, "tom@example.org"),
        }


def printed_sums(output: str) -> list[tuple[str, int, str]]:
    return [
        (name, int(rows), digest)
        for name, rows, digest in re.findall(r"^  (\w+) +(\d+)  ([0-9a-f]{64})$", output, re.M)
    ]


def test_a_sqlite_desk_moves_to_postgresql_whole_and_verified(
    desk: Desk, target: str, moved: Desk
) -> None:
    build_desk(desk)
    result = copy(desk, target)
    assert result.exit_code == 0, result.output
    assert f"verified: {len(db.metadata.sorted_tables)} tables" in result.output
    assert every_row(moved.engine) == every_row(desk.engine)
    before = as_the_app_reads_it(desk.engine)
    assert as_the_app_reads_it(moved.engine) == before
    assert len(before["readers"]) == 4 and before["tom suppressed"] is True
    assert before["readers"][1]["subscriber"]["status"] == "erased"
    with desk.engine.connect() as src, moved.engine.connect() as dst:
        sums = table_sums(src)
        assert table_sums(dst) == sums
    assert printed_sums(result.output) == [(s.table, s.rows, s.sha256) for s in sums]
    assert {s.table for s in sums} == set(db.metadata.tables)
    assert all(s.rows > 0 for s in sums), [s.table for s in sums if not s.rows]
    with moved.engine.begin() as conn:  # the copy works as a desk: a login, the password
        assert log_in(conn, EDITOR, PASSWORD, "192.0.2.9", NOW).email == EDITOR


def test_new_rows_on_the_copy_get_fresh_ids(desk: Desk, target: str, moved: Desk) -> None:
    build_desk(desk)
    assert copy(desk, target).exit_code == 0
    later = NOW + timedelta(days=1)
    with moved.engine.begin() as conn:
        top = {
            t.name: conn.execute(sa.select(sa.func.max(t.c.id))).scalar_one()
            for t in db.metadata.sorted_tables
            if t.autoincrement_column is not None
        }
        policy = current_policy(conn)
        reader = add_active_reader(conn, "new@example.org", "", Evidence(source="t"), policy, later)
        event = export_subscriber(conn, reader)["consent_events"][0]["id"]
        editor = add_editor(conn, "second@example.org", PASSWORD, later).id
        with pytest.raises(LoginRefused):
            log_in(conn, "second@example.org", "not it at all", "192.0.2.1", later)
        attempt = sign_up(conn, SignUp("ivan@example.org", True, "", Evidence(source="t", ip="192.0.2.2")),
                          Limits(), SECRET, later)  # fmt: skip
        issue = new_issue(conn, date(2026, 12, 11), later).id
    assert attempt is not None
    assert reader == top["subscribers"] + 1 and event == top["consent_events"] + 1
    assert editor == top["editors"] + 1 and issue == top["issues"] + 1
    with moved.engine.connect() as conn:
        for name in ("login_failures", "signup_attempts"):
            table = db.metadata.tables[name]
            assert conn.execute(sa.select(sa.func.max(table.c.id))).scalar_one() == top[name] + 1


def test_a_second_copy_is_refused_by_table_unless_replace(
    desk: Desk, target: str, moved: Desk
) -> None:
    build_desk(desk)
    assert copy(desk, target).exit_code == 0
    with moved.engine.begin() as conn:
        add_active_reader(conn, "only-on-the-copy@example.org", "", Evidence(source="t"),
                          current_policy(conn), NOW)  # fmt: skip
    held = every_row(moved.engine)
    again = copy(desk, target)
    assert again.exit_code == 4
    assert again.output.startswith("Error: alerts: the target already holds 1 row: ")
    assert "--replace" in again.output
    assert every_row(moved.engine) == held
    replaced = copy(desk, target, "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert every_row(moved.engine) == every_row(desk.engine)


def tables_in(url: str) -> list[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        names = sorted(sa.inspect(conn).get_table_names())
    engine.dispose()
    return names


def test_a_row_the_target_refuses_takes_the_whole_copy_back(desk: Desk, target: str) -> None:
    if desk.engine.dialect.name != "sqlite":
        pytest.skip("only a SQLite source keeps a value longer than its column")
    build_desk(desk)
    with desk.engine.begin() as conn:  # SQLite keeps what PostgreSQL's VARCHAR(200) refuses
        conn.execute(db.leases.update().values(holder="h" * 300))
    result = copy(desk, target)
    assert result.exit_code == 4
    assert result.output.startswith("Error: leases: the target refused a row: value too long")
    assert tables_in(target) == []  # the tables copied before it, and the schema, went back


def test_a_conflicting_table_in_the_target_leaves_it_as_it_was(desk: Desk, target: str) -> None:
    build_desk(desk)
    engine = sa.create_engine(target)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alerts (note text)"))
    result = copy(desk, target)
    assert result.exit_code == 4
    assert result.output.startswith("Error: target schema: ")
    assert 'relation "alerts" already exists' in result.output
    assert tables_in(target) == ["alerts"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alerts")).scalar_one() == 0
    engine.dispose()


@pytest.mark.parametrize(
    ("to", "said"),
    [
        ("not a url", "--to: not a database URL"),
        ("postgresql+psycopg://postgres@127.0.0.1:1/test", "--to: cannot connect: "),
        ("nosuchdb://x/y", "--to: "),
    ],
)
def test_a_bad_target_url_is_named_as_the_option(desk: Desk, to: str, said: str) -> None:
    result = copy(desk, to)
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {said}"), result.output


def test_the_desk_is_not_copied_onto_itself(desk: Desk) -> None:
    result = copy(desk, desk.settings.database_url, "--replace")
    assert result.exit_code == 2
    assert "--to: that is the desk's own database" in result.output
    with desk.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.policy_versions)).scalar()


def test_a_desk_not_yet_initialised_is_refused(desk: Desk, tmp_path: Any, target: str) -> None:
    fresh = Desk(replace(desk.settings, database_url=f"sqlite:///{tmp_path}/empty.db"))
    result = copy(fresh, target)
    assert result.exit_code == 4
    assert "at migration none" in result.output and "newsletter init" in result.output
    assert tables_in(target) == []


def test_a_copy_into_sqlite_and_the_checksums_command_agree(desk: Desk, tmp_path: Any) -> None:
    build_desk(desk)
    other = f"sqlite:///{tmp_path}/copy/newsletter.db"
    assert copy(desk, other).exit_code == 0
    moved = Desk(replace(desk.settings, database_url=other))
    shown = CliRunner().invoke(cli, ["db", "checksums", "--json"], obj=moved)
    assert shown.exit_code == 0, shown.output
    with desk.engine.connect() as conn:
        expected = [
            {"table": s.table, "rows": s.rows, "sha256": s.sha256} for s in table_sums(conn)
        ]
    assert json.loads(shown.stdout) == expected
    init_desk(moved, NOW)  # the copy is a desk at the newest migration
    moved.engine.dispose()


def sign_up_while_reading(desk: Desk, table: str) -> list[str]:
    """Once the copy has read `table`, a reader signs up through a connection of its own and
    commits: a new row in subscribers and one in consent_events, a later table. Returns the
    address once it has signed up."""
    signed: list[str] = []

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if signed or f"FROM {table}" not in statement:
            return
        signed.append("late@example.org")
        with desk.engine.begin() as other:
            sign_up(other, SignUp(signed[0], True, "", Evidence(source="test")), Limits(),
                    SECRET, NOW)  # fmt: skip

    sa.event.listen(desk.engine, "after_cursor_execute", after)
    return signed


def test_a_copy_is_whole_as_of_its_start_while_readers_sign_up(desk: Desk, tmp_path: Any) -> None:
    build_desk(desk)
    before = every_row(desk.engine)
    signed = sign_up_while_reading(desk, "subscribers")
    other = f"sqlite:///{tmp_path}/copy/newsletter.db"

    result = copy(desk, other)

    assert result.exit_code == 0, result.output
    assert signed == ["late@example.org"]  # the sign-up happened during the copy
    moved = Desk(replace(desk.settings, database_url=other))
    assert every_row(moved.engine) == before  # neither the reader nor the event
    with desk.engine.connect() as conn:  # the desk itself has the reader
        late = sa.select(db.subscribers.c.status).where(db.subscribers.c.email == signed[0])
        assert conn.execute(late).scalar_one() == "pending"
    moved.engine.dispose()


def test_checksums_are_of_one_moment_while_readers_sign_up(desk: Desk) -> None:
    build_desk(desk)
    with desk.engine.connect() as conn:
        expected = [
            {"table": s.table, "rows": s.rows, "sha256": s.sha256} for s in table_sums(conn)
        ]
    signed = sign_up_while_reading(desk, "subscribers")

    shown = CliRunner().invoke(cli, ["db", "checksums", "--json"], obj=desk)

    assert shown.exit_code == 0, shown.output
    assert signed and json.loads(shown.stdout) == expected


# --- the checksum itself ----------------------------------------------------------------------


def test_values_have_one_canonical_form_whichever_database_read_them() -> None:
    when = datetime(2026, 11, 27, 9, 0, 0, 123456, tzinfo=UTC)
    assert canonical(when) == "2026-11-27T09:00:00.123456+00:00"
    assert canonical(date(2026, 11, 27)) == "2026-11-27"
    assert canonical(b"\x00\xff") == canonical(memoryview(b"\x00\xff")) == "AP8="
    assert row_line([1, True, None, "Анна", 0.1]) == '[1,true,null,"Анна",0.1]\n'.encode()
    with pytest.raises(TypeError, match="no canonical form for set"):
        canonical(set())


def test_the_checksum_follows_the_rows_and_their_order() -> None:
    def digest(*rows: tuple[Any, ...]) -> str:
        d = TableDigest("t")
        d.add(rows)
        return d.result().sha256

    assert digest((1, "a"), (2, "b")) == digest((1, "a"), (2, "b"))
    assert digest((1, "a"), (2, "b")) != digest((2, "b"), (1, "a"))
    assert digest((1, "a")) != digest((1, "a "))
    assert digest() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
