"""Curation: one issue per send day, ordered items, and what each state allows."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from newsletter.curation.articles import add_article
from newsletter.curation.issues import (
    approve,
    cancel,
    get_issue,
    move,
    new_issue,
    pick,
    set_fields,
    set_item,
    unapprove,
    unpick,
)
from newsletter.errors import InputError, NotFound, StateError
from newsletter.settings import Settings
from newsletter.settings.values import SendAt

from .conftest import NOW


@pytest.fixture
def conn(desk):
    with desk.engine.begin() as connection:
        for n in range(1, 5):
            add_article(
                connection,
                url=f"https://example.org/{n}",
                title=f"Article {n}",
                section="News" if n % 2 else "Culture",
                now=NOW,
            )
        yield connection


def titles(conn: sa.Connection, issue_id: int) -> list[str]:
    return [item.title for item in get_issue(conn, issue_id).items]


@pytest.mark.parametrize(
    ("day", "friday"),
    [
        (date(2026, 11, 23), date(2026, 11, 27)),  # Monday
        (date(2026, 11, 27), date(2026, 11, 27)),  # Friday itself
        (date(2026, 11, 28), date(2026, 12, 4)),  # Saturday
        (date(2026, 12, 31), date(2027, 1, 1)),  # across the year
    ],
)
def test_the_send_day_on_or_after_a_date(day: date, friday: date) -> None:
    assert SendAt(4, time(9, 0)).day_on_or_after(day) == friday
    tuesday = SendAt(1, time(9, 0)).day_on_or_after(day)
    assert tuesday.weekday() == 1 and 0 <= (tuesday - day).days < 7


def test_the_send_day_of_a_moment_and_the_next_send_still_to_come() -> None:
    """Friday 09:00 in Moscow: on Friday at 10:00 there the week's send day is still today
    (the issue of the week), but the next send to come is next Friday's."""
    settings = Settings(send_at=SendAt(4, time(9, 0)), timezone=ZoneInfo("Europe/Moscow"))
    friday_10_moscow = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
    assert settings.send_day(friday_10_moscow) == date(2026, 11, 27)
    assert settings.next_send_day(friday_10_moscow) == date(2026, 12, 4)
    thursday_late_utc = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)  # Friday 01:00 in Moscow
    assert settings.next_send_day(thursday_late_utc) == date(2026, 11, 27)


def test_one_issue_per_send_day(conn: sa.Connection) -> None:
    first = new_issue(conn, date(2026, 11, 27), NOW)
    with pytest.raises(StateError, match=f"issue {first.id} is already the issue for 2026-11-27"):
        new_issue(conn, date(2026, 11, 27), NOW)
    assert get_issue(conn, "2026-11-27").id == first.id


def test_pick_by_id_and_url_in_order_then_move_and_unpick(conn: sa.Connection) -> None:
    issue = new_issue(conn, date(2026, 11, 27), NOW)
    pick(conn, issue.id, ["3", "https://example.org/1", 2], NOW)
    assert titles(conn, issue.id) == ["Article 3", "Article 1", "Article 2"]
    move(conn, issue.id, "2", 1, NOW)
    assert titles(conn, issue.id) == ["Article 2", "Article 3", "Article 1"]
    unpick(conn, issue.id, ["3"], NOW)
    assert titles(conn, issue.id) == ["Article 2", "Article 1"]
    assert [i.position for i in get_issue(conn, issue.id).items] == [1, 2]


@pytest.mark.parametrize(
    ("action", "error", "message"),
    [
        (lambda c, i: pick(c, i, ["1"], NOW), InputError, "article 1 is already in issue"),
        (lambda c, i: pick(c, i, ["99"], NOW), NotFound, "99"),
        (lambda c, i: move(c, i, "1", 5, NOW), InputError, "position: must be between 1 and 1"),
        (lambda c, i: unpick(c, i, ["2"], NOW), NotFound, "article 2 is not in issue"),
        (lambda c, i: set_fields(c, i, NOW, subject="a\nb"), InputError, "subject: must be one"),
    ],
)
def test_bad_curation_is_refused_with_a_reason(conn, action, error, message) -> None:
    issue = new_issue(conn, date(2026, 11, 27), NOW)
    pick(conn, issue.id, ["1"], NOW)
    with pytest.raises(error, match=message):
        action(conn, issue.id)


def test_overrides_show_in_the_issue_and_empty_restores(conn: sa.Connection) -> None:
    issue = new_issue(conn, date(2026, 11, 27), NOW)
    pick(conn, issue.id, ["1"], NOW)
    set_item(conn, issue.id, "1", NOW, title="Shorter", summary="Our own words")
    item = get_issue(conn, issue.id).items[0]
    assert (item.title, item.summary) == ("Shorter", "Our own words")
    set_item(conn, issue.id, "1", NOW, title="", summary="")
    item = get_issue(conn, issue.id).items[0]
    assert (item.title, item.summary) == ("Article 1", "")


def test_an_empty_or_untitled_issue_cannot_be_approved(conn: sa.Connection) -> None:
    issue = new_issue(conn, date(2026, 11, 27), NOW)
    with pytest.raises(StateError, match="is empty"):
        approve(conn, issue.id, NOW)
    pick(conn, issue.id, ["1"], NOW)
    with pytest.raises(StateError, match="has no subject"):
        approve(conn, issue.id, NOW)


def test_an_approved_issue_is_frozen_until_unapproved(conn: sa.Connection) -> None:
    issue = new_issue(conn, date(2026, 11, 27), NOW)
    pick(conn, issue.id, ["1"], NOW)
    set_fields(conn, issue.id, NOW, subject="Weekly", appeal=False)
    assert approve(conn, issue.id, NOW).status == "approved"
    for change in (
        lambda: pick(conn, issue.id, ["2"], NOW),
        lambda: set_fields(conn, issue.id, NOW, subject="Changed"),
        lambda: set_item(conn, issue.id, "1", NOW, title="Changed"),
    ):
        with pytest.raises(StateError, match="is approved: only a draft can change"):
            change()
    assert unapprove(conn, issue.id, NOW).status == "draft"
    assert pick(conn, issue.id, ["2"], NOW).items[-1].title == "Article 2"
    assert get_issue(conn, issue.id).appeal is False


def test_a_sent_issue_never_changes(conn: sa.Connection) -> None:
    from newsletter.store import tables as db

    issue = new_issue(conn, date(2026, 11, 27), NOW)
    conn.execute(db.issues.update().values(status="sent"))
    for action in (unapprove, cancel):
        with pytest.raises(StateError):
            action(conn, issue.id, NOW)
    with pytest.raises(StateError, match="is sent: only a draft can change"):
        set_fields(conn, issue.id, NOW, subject="x")


def test_issue_refs_that_do_not_exist(conn: sa.Connection) -> None:
    with pytest.raises(NotFound, match="no issue 42"):
        get_issue(conn, 42)
    with pytest.raises(InputError, match="neither an issue id nor a date"):
        get_issue(conn, "next friday")
