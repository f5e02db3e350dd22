"""Readers and consent through the library: every transition, every refusal, the evidence kept."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from newsletter.errors import InputError, NotFound, StateError
from newsletter.readers.access import export_csv, export_subscriber, forget
from newsletter.readers.addresses import normalise_address
from newsletter.readers.consent import Evidence, current_policy, publish_policy
from newsletter.readers.optin import Limits, RateLimited, SignUp, confirm, sign_up
from newsletter.readers.subscribers import (
    add_active_reader,
    get_subscriber,
    reconsent,
    record_complaint,
    record_permanent_failure,
    request_reconsent,
    unsubscribe,
)
from newsletter.readers.tokens import (
    CONFIRM,
    TokenError,
    read_reader_token,
    read_timed_token,
    reader_token,
    timed_token,
)
from newsletter.store import tables as db

from .conftest import NOW, SECRET

FORM = Evidence(
    source="https://example.org/newsletter", ip="198.51.100.7", user_agent="Firefox/140"
)
LIMITS = Limits()


def events(conn: sa.Connection, subscriber_id: int) -> list[dict]:  # type: ignore[type-arg]
    e = db.consent_events
    rows = conn.execute(sa.select(e).where(e.c.subscriber_id == subscriber_id).order_by(e.c.id))
    return [dict(r) for r in rows.mappings()]


def status(conn: sa.Connection, subscriber_id: int) -> str:
    return get_subscriber(conn, subscriber_id).status


@pytest.fixture
def conn(desk):
    with desk.engine.begin() as connection:
        yield connection


def signed_up(conn: sa.Connection, email: str = "Anna@Example.ORG", name: str = "Анна"):
    mail = sign_up(conn, SignUp(email, True, name, FORM), LIMITS, SECRET, NOW)
    assert mail is not None and mail.kind == "confirm"
    return mail


def test_sign_up_records_the_evidence_and_waits_for_confirmation(conn: sa.Connection) -> None:
    mail = signed_up(conn)
    assert mail.email == "anna@example.org"
    assert status(conn, mail.subscriber_id) == "pending"
    [given_event] = events(conn, mail.subscriber_id)
    policy = current_policy(conn)
    assert given_event["kind"] == "given" and given_event["at"] == NOW
    assert (given_event["ip"], given_event["user_agent"]) == ("198.51.100.7", "Firefox/140")
    assert given_event["source"] == "https://example.org/newsletter"
    assert given_event["policy_version"] == policy.version
    assert given_event["policy_sha256"] == hashlib.sha256(policy.text.encode()).hexdigest()
    assert given_event["wording"] == policy.wording


@pytest.mark.parametrize("consent", [False, None, "yes"])
def test_without_an_explicit_yes_nothing_is_stored(conn: sa.Connection, consent: object) -> None:
    with pytest.raises(InputError, match="consent: tick the box"):
        sign_up(conn, SignUp("a@example.org", consent, "", FORM), LIMITS, SECRET, NOW)  # type: ignore[arg-type]
    assert conn.execute(sa.select(sa.func.count()).select_from(db.subscribers)).scalar() == 0
    assert conn.execute(sa.select(sa.func.count()).select_from(db.consent_events)).scalar() == 0


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("not-an-address", "email: 'not-an-address' is not a valid address"),
        ("a@b", "is not a valid address"),
        ("two@@example.org", "is not a valid address"),
        ("", "email: '' is not a valid address"),
    ],
)
def test_bad_addresses_are_refused_with_the_field(
    conn: sa.Connection, address: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        sign_up(conn, SignUp(address, True, "", FORM), LIMITS, SECRET, NOW)


def test_confirmation_activates_once_and_replays_change_nothing(conn: sa.Connection) -> None:
    mail = signed_up(conn)
    click = Evidence(
        source="https://news.example.org/confirm", ip="203.0.113.9", user_agent="Safari"
    )
    welcome = confirm(conn, mail.token, click, SECRET, timedelta(days=7), NOW + timedelta(hours=2))
    assert welcome is not None and welcome.kind == "welcome"
    assert status(conn, mail.subscriber_id) == "active"
    confirmed = events(conn, mail.subscriber_id)[-1]
    assert confirmed["kind"] == "confirmed" and confirmed["ip"] == "203.0.113.9"
    assert confirmed["policy_version"] == current_policy(conn).version
    assert confirm(conn, mail.token, click, SECRET, timedelta(days=7), NOW) is None
    assert [e["kind"] for e in events(conn, mail.subscriber_id)] == ["given", "confirmed"]


def test_expired_forged_and_foreign_tokens_change_nothing(conn: sa.Connection) -> None:
    mail = signed_up(conn)
    later = NOW + timedelta(days=7, seconds=1)
    with pytest.raises(TokenError, match="expired"):
        confirm(conn, mail.token, FORM, SECRET, timedelta(days=7), later)
    for bad in (mail.token[:-3], mail.token + "A", reader_token(SECRET, mail.subscriber_id)):
        with pytest.raises(TokenError):
            confirm(conn, bad, FORM, SECRET, timedelta(days=7), NOW)
    with pytest.raises(TokenError):
        confirm(conn, mail.token, FORM, "another-secret", timedelta(days=7), NOW)
    assert status(conn, mail.subscriber_id) == "pending"


def test_the_answer_is_the_same_whoever_the_address_is(conn: sa.Connection) -> None:
    """Sign-up returns nothing a caller could tell apart; pending and unsubscribed get a mail."""
    active = signed_up(conn, "active@example.org")
    confirm(conn, active.token, FORM, SECRET, timedelta(days=7), NOW)
    assert sign_up(conn, SignUp("active@example.org", True, "", FORM), LIMITS, SECRET, NOW) is None
    pending = signed_up(conn, "pending@example.org")
    again = sign_up(conn, SignUp("pending@example.org", True, "", FORM), LIMITS, SECRET, NOW)
    assert again is not None and again.subscriber_id == pending.subscriber_id


def test_a_returning_reader_goes_through_double_opt_in_again(conn: sa.Connection) -> None:
    first = signed_up(conn)
    confirm(conn, first.token, FORM, SECRET, timedelta(days=7), NOW)
    unsubscribe(conn, first.subscriber_id, Evidence(source="one-click"), NOW)
    second = signed_up(conn)
    assert second.subscriber_id == first.subscriber_id
    assert status(conn, first.subscriber_id) == "pending"
    with pytest.raises(TokenError, match="no longer valid"):
        confirm(conn, first.token, FORM, SECRET, timedelta(days=7), NOW)
    confirm(conn, second.token, FORM, SECRET, timedelta(days=7), NOW)
    kinds = [e["kind"] for e in events(conn, first.subscriber_id)]
    assert kinds == ["given", "confirmed", "withdrawn", "given", "confirmed"]


def test_an_address_gets_a_few_confirmation_mails_a_day_at_most(conn: sa.Connection) -> None:
    limits = Limits(confirm_mails_per_day=3)
    request = SignUp("victim@example.org", True, "", Evidence(source="form"))
    mails = [sign_up(conn, request, limits, SECRET, NOW + timedelta(minutes=n)) for n in range(6)]
    assert [m is not None for m in mails] == [True, True, True, False, False, False]
    tomorrow = sign_up(conn, request, limits, SECRET, NOW + timedelta(days=1, minutes=1))
    assert tomorrow is not None


def test_an_ip_gets_a_limited_number_of_sign_ups_an_hour(conn: sa.Connection) -> None:
    limits = Limits(signups_per_hour=5)
    for n in range(5):
        sign_up(conn, SignUp(f"r{n}@example.org", True, "", FORM), limits, SECRET, NOW)
    with pytest.raises(RateLimited, match="too many sign-ups"):
        sign_up(conn, SignUp("r9@example.org", True, "", FORM), limits, SECRET, NOW)
    assert sign_up(conn, SignUp("r9@example.org", True, "", FORM), limits, SECRET,
                   NOW + timedelta(hours=1, seconds=1)) is not None  # fmt: skip


def test_withdrawal_is_recorded_with_its_channel(conn: sa.Connection) -> None:
    mail = signed_up(conn)
    confirm(conn, mail.token, FORM, SECRET, timedelta(days=7), NOW)
    assert unsubscribe(conn, mail.subscriber_id, Evidence(source="one-click (RFC 8058)"), NOW)
    assert not unsubscribe(conn, mail.subscriber_id, Evidence(source="cli"), NOW)
    withdrawn = events(conn, mail.subscriber_id)[-1]
    assert (withdrawn["kind"], withdrawn["source"]) == ("withdrawn", "one-click (RFC 8058)")
    assert status(conn, mail.subscriber_id) == "unsubscribed"


def test_bounces_count_up_to_the_limit_and_complaints_act_at_once(conn: sa.Connection) -> None:
    policy = current_policy(conn)
    a = add_active_reader(conn, "a@example.org", "", FORM, policy, NOW)
    b = add_active_reader(conn, "b@example.org", "", FORM, policy, NOW)
    assert not record_permanent_failure(conn, a, "550 5.1.1 user unknown", 2, NOW)
    assert status(conn, a) == "active"
    assert record_permanent_failure(conn, a, "550 5.1.1 user unknown", 2, NOW)
    assert status(conn, a) == "bounced"
    assert events(conn, a)[-1]["kind"] == "bounced"
    assert events(conn, a)[-1]["detail"] == "550 5.1.1 user unknown"
    record_complaint(conn, b, "feedback report from example.net", NOW)
    assert status(conn, b) == "complained"
    assert sign_up(conn, SignUp("b@example.org", True, "", FORM), LIMITS, SECRET, NOW) is None
    with pytest.raises(StateError, match="suppressed"):
        add_active_reader(conn, "b@example.org", "", FORM, policy, NOW)


def test_forget_erases_personal_data_and_keeps_the_ledger(conn: sa.Connection) -> None:
    mail = signed_up(conn, "gone@example.org", "Gone Person")
    confirm(conn, mail.token, FORM, SECRET, timedelta(days=7), NOW)
    record_permanent_failure(conn, mail.subscriber_id, "550 <gone@example.org> unknown", 5, NOW)
    kinds_before = [e["kind"] for e in events(conn, mail.subscriber_id)]
    forget(conn, "gone@example.org", NOW)
    row = (
        conn.execute(sa.select(db.subscribers).where(db.subscribers.c.id == mail.subscriber_id))
        .mappings()
        .one()
    )
    assert (row["email"], row["name"], row["status"]) == (None, "", "erased")
    ledger = events(conn, mail.subscriber_id)
    assert [e["kind"] for e in ledger] == [*kinds_before, "erased"]
    assert all(e["ip"] is None and e["user_agent"] is None for e in ledger)
    everything = repr(ledger) + repr(dict(row))
    assert "gone@example.org" not in everything and "Gone Person" not in everything
    assert sign_up(conn, SignUp("GONE@example.org", True, "", FORM), LIMITS, SECRET, NOW) is None
    with pytest.raises(StateError, match="suppressed"):
        add_active_reader(conn, "gone@example.org", "", FORM, current_policy(conn), NOW)
    with pytest.raises(NotFound):
        get_subscriber(conn, "gone@example.org")


def test_export_holds_everything_about_one_reader(conn: sa.Connection) -> None:
    mail = signed_up(conn)
    confirm(conn, mail.token, FORM, SECRET, timedelta(days=7), NOW)
    document = export_subscriber(conn, "anna@example.org")
    assert document["subscriber"]["email"] == "anna@example.org"
    assert [e["kind"] for e in document["consent_events"]] == ["given", "confirmed"]
    assert document["consent_events"][0]["wording"] == current_policy(conn).wording
    csv_text = export_csv(conn)
    assert csv_text.splitlines()[0] == "email,name,status,consented_at,source,ip,policy_version"
    assert "anna@example.org,Анна,active," in csv_text


def test_policy_change_with_reconsent_stops_mail_until_agreed(conn: sa.Connection) -> None:
    policy = current_policy(conn)
    a = add_active_reader(conn, "a@example.org", "", FORM, policy, NOW)
    newer = publish_policy(conn, "2027-01-01", policy.text + "\nA new paragraph.", "I agree anew.",
                           NOW + timedelta(days=1))  # fmt: skip
    [notice] = request_reconsent(conn, newer, SECRET, NOW + timedelta(days=1))
    assert status(conn, a) == "reconsent"
    assert events(conn, a)[-1]["kind"] == "reconsent_requested"
    assert reconsent(conn, notice.token, FORM, SECRET, NOW + timedelta(days=2))
    assert status(conn, a) == "active"
    last = events(conn, a)[-1]
    assert (last["kind"], last["policy_version"], last["wording"]) == (
        "confirmed",
        "2027-01-01",
        "I agree anew.",
    )
    assert not reconsent(conn, notice.token, FORM, SECRET, NOW + timedelta(days=2))


def test_a_published_policy_is_never_edited(conn: sa.Connection) -> None:
    policy = current_policy(conn)
    assert publish_policy(conn, policy.version, policy.text, policy.wording, NOW) == policy
    with pytest.raises(StateError, match="already published with other text"):
        publish_policy(conn, policy.version, policy.text + " changed", policy.wording, NOW)


def test_every_active_reader_has_evidence_that_hashes_to_its_policy(conn: sa.Connection) -> None:
    policy = current_policy(conn)
    add_active_reader(conn, "imported@example.org", "", FORM, policy, NOW)
    mail = signed_up(conn, "signed@example.org")
    confirm(conn, mail.token, FORM, SECRET, timedelta(days=7), NOW)
    s, e, p = db.subscribers, db.consent_events, db.policy_versions
    rows = conn.execute(
        sa.select(s.c.id, e.c.policy_sha256, p.c.text)
        .join(e, e.c.subscriber_id == s.c.id)
        .join(p, p.c.version == e.c.policy_version)
        .where(s.c.status == "active", e.c.kind.in_(("given", "imported")))
    ).all()
    assert {r.id for r in rows} == {
        r for r in conn.execute(sa.select(s.c.id).where(s.c.status == "active")).scalars()
    }
    assert all(hashlib.sha256(r.text.encode()).hexdigest() == r.policy_sha256 for r in rows)


@given(
    local=st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9._+-]{0,20}[a-zA-Z0-9]", fullmatch=True),
    domain=st.sampled_from(
        ["Example.ORG", "example.org", "ПРИМЕР.рф", "xn--e1afmkfd.xn--p1ai", "Mail.Example.co.uk"]
    ),
)
def test_normalising_is_stable_and_case_blind(local: str, domain: str) -> None:
    try:
        once = normalise_address(f"{local}@{domain}")
    except InputError:
        return  # e.g. two dots in a row: refused, which is the other allowed outcome
    assert normalise_address(once) == once == once.lower()
    assert normalise_address(once.upper()) == once
    assert once.split("@")[0] == local.lower()


@given(
    subscriber=st.integers(min_value=1, max_value=10**9),
    other=st.integers(min_value=1, max_value=10**9),
    cut=st.integers(min_value=1, max_value=20),
    junk=st.text(min_size=1, max_size=5),
)
def test_tampered_truncated_or_cross_reader_tokens_are_refused(
    subscriber: int, other: int, cut: int, junk: str
) -> None:
    token = reader_token(SECRET, subscriber)
    assert read_reader_token(SECRET, token) == subscriber
    payload, signature = token.split(".")
    forged = [
        token[:-cut],
        token + junk,
        f"{reader_token(SECRET, other).split('.')[0]}.{signature}",
    ]
    for bad in forged:
        if bad == token or (
            other == subscriber and bad.startswith(payload + ".") and bad.endswith(signature)
        ):
            continue
        with pytest.raises(TokenError):
            read_reader_token(SECRET, bad)
    confirm_token = timed_token(SECRET, CONFIRM, subscriber, "1", NOW)
    with pytest.raises(TokenError):
        read_reader_token(SECRET, confirm_token)
    with pytest.raises(TokenError):
        read_timed_token(SECRET, CONFIRM, token, NOW, timedelta(days=7))
