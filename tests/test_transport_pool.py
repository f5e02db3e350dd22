"""Several relays: connections spread by weight, a relay that fails is taken out for a
cool-down and the others carry its messages; counted at real SMTP servers."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.app import Desk
from newsletter.delivery.report import SendOptions, SendReport
from newsletter.delivery.send import send_issue
from newsletter.errors import ConfigError, RelayUnavailable
from newsletter.settings import load_settings
from newsletter.settings.relays import parse_relays
from newsletter.transport.base import Envelope
from newsletter.transport.pool import RelayPool, open_transports

from .conftest import SMTPServer, approved_issue, free_port, seed_readers
from .test_delivery import Recorder, ledger_by_reader, recorders, seed_many, start_recorder

__all__ = ["recorders"]  # the fixture, used by name


def start_relay(tmp_path: Path, rules: dict[str, object], delay: float = 0.0) -> Recorder:
    """A recording SMTP server that also logs one line per connection (EHLO)."""
    return start_recorder(tmp_path, delay, json.dumps(rules), sessions=True)


def sessions(relay: Recorder) -> int:
    path = relay.log.with_suffix(".sessions")
    return len(path.read_text().splitlines()) if path.exists() else 0


def send_over(desk: Desk, smtp_url: str, issue_id: int, options: SendOptions) -> SendReport:
    settings = replace(desk.settings, smtp_url=smtp_url)
    pool = open_transports(smtp_url, settings.outbox, timedelta(minutes=5))
    return send_issue(
        issue_id,
        desk.engine,
        settings,
        pool,
        lambda: datetime.now(UTC),  # clock: retries wait on it
        options=options,
    )


def test_connections_follow_the_weights(
    desk: Desk, tmp_path: Path, recorders: list[Recorder]
) -> None:
    addresses = seed_many(desk.engine, 400)
    issue = approved_issue(desk.engine, picks=2)
    heavy, light = start_relay(tmp_path, {}, delay=0.01), start_relay(tmp_path, {}, delay=0.01)
    recorders += [heavy, light]
    url = f"{heavy.url}?weight=3,{light.url}"
    send_over(desk, url, issue.id, SendOptions(concurrency=8))
    assert (sessions(heavy), sessions(light)) == (6, 2)
    both = heavy.recipients() + light.recipients()
    assert both == {a: 1 for a in addresses}
    assert heavy.recipients().total() > light.recipients().total()


def test_a_relay_that_stops_accepting_is_taken_out_and_the_other_carries_the_rest(
    desk: Desk, tmp_path: Path, recorders: list[Recorder]
) -> None:
    addresses = seed_many(desk.engine, 400)
    issue = approved_issue(desk.engine, picks=2)
    failing = start_relay(tmp_path, {"421-after": 50}, delay=0.002)
    steady = start_relay(tmp_path, {}, delay=0.002)
    recorders += [failing, steady]
    options = SendOptions(
        concurrency=4, retry_base=timedelta(milliseconds=20), wait_for_retries=timedelta(seconds=30)
    )
    report = send_over(desk, f"{failing.url},{steady.url}", issue.id, options)
    assert set(ledger_by_reader(desk.engine, issue.id).values()) == {"sent"}
    both = failing.recipients() + steady.recipients()
    assert both == {a: 1 for a in addresses}
    assert 50 <= failing.recipients().total() <= 52  # what it took before it stopped
    lines = "\n".join(report.lines())
    assert f"relay 127.0.0.1:{failing.port} taken out for 300 s" in lines
    assert report.status == "sent"


def test_when_every_relay_is_out_the_send_pauses_and_they_return_after_the_cool_down() -> None:
    url = f"smtp://127.0.0.1:{free_port()},smtp://127.0.0.1:{free_port()}?weight=2"
    now = [0.0]
    pool = RelayPool(parse_relays(url), timedelta(seconds=60), fail_after=2, clock=lambda: now[0])
    connection = pool()
    envelope = Envelope("a@example.org", "b@example.org", "<m@example.org>", b"x\r\n", True)
    for _ in range(3):  # two failures take the first relay out, the third is on the second
        with pytest.raises(RelayUnavailable):
            connection.send(envelope)
    with pytest.raises(RelayUnavailable, match="every relay is out"):
        connection.send(envelope)
    assert len(pool.out()) == 2 and len(pool.events) == 2
    now[0] = 61.0
    assert pool.out() == []
    connection.close()
    assert [r.connections for r in pool.relays] == [0, 0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("smtp://a:25?weight=0", "weight is 1 or more"),
        ("smtp://a:25?wieght=2", "unknown option(s) wieght"),
        ("smtp://a:25,smtp://b:25?rate=fast", "could not convert string to float"),
        ("smtp://a:25,http://b", "must look like smtp://"),
    ],
)
def test_a_bad_relay_list_is_refused_with_its_variable(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="NEWSLETTER_SMTP_URL") as caught:
        load_settings({"NEWSLETTER_SMTP_URL": value}, Path("/nonexistent.toml"))
    assert message in str(caught.value)


def test_relay_options_are_read() -> None:
    heavy, plain = parse_relays(
        "smtps://u:p@a.example.org?weight=3&max_connections=4&rate=50,smtp://b"
    )
    assert (heavy.weight, heavy.max_connections, heavy.rate, heavy.name) == (
        3,
        4,
        50.0,
        "a.example.org:465",
    )
    assert heavy.address.username == "u" and heavy.address.implicit_tls
    assert (plain.weight, plain.max_connections, plain.rate, plain.name) == (1, 0, 0.0, "b:25")


def test_a_relay_capped_below_the_concurrency_gets_no_more_connections_and_no_pause(
    desk: Desk, smtp_server: SMTPServer
) -> None:
    """max_connections=2 with the default 4 connections: two connections, every reader sent."""
    seed_readers(desk.engine)
    issue = approved_issue(desk.engine)
    capped = replace(desk.settings, smtp_url=f"{smtp_server.url}?max_connections=2", pause_after=2)
    capped_desk = Desk(capped)
    report = send_issue(issue.id, desk.engine, capped, capped_desk.transports(),
                        lambda: datetime.now(UTC))  # fmt: skip  # clock: retries wait on it
    assert report.paused is None and report.sent == 3 and report.status == "sent"


# The caps are checked from below: the server's clock must show at least the time the
# cap allows for the messages (a slow machine only makes the span longer).


def test_a_relays_rate_spaces_the_messages_it_takes(
    desk: Desk, tmp_path: Path, recorders: list[Recorder]
) -> None:
    addresses = seed_many(desk.engine, 30)
    issue = approved_issue(desk.engine, picks=2)
    capped = start_relay(tmp_path, {})
    recorders.append(capped)
    began = time.monotonic()
    report = send_over(desk, f"{capped.url}?rate=20", issue.id, SendOptions(concurrency=4))
    took = time.monotonic() - began
    assert report.sent == 30 and capped.recipients() == {a: 1 for a in addresses}
    # 20 a second from the first on; the server's log shows the spacing too, less the
    # jitter of its own receipt of the first message
    assert took >= (30 - 1) / 20 * 0.999
    taken = capped.times()
    assert taken[-1] - taken[0] >= (30 - 1) / 20 * 0.8


def test_the_sends_rate_lets_a_burst_go_then_holds_the_pace(
    desk: Desk, tmp_path: Path, recorders: list[Recorder]
) -> None:
    """NEWSLETTER_RATE: a second's worth at once, then one every 1/rate seconds."""
    seed_many(desk.engine, 40)
    issue = approved_issue(desk.engine, picks=2)
    relay = start_relay(tmp_path, {})
    recorders.append(relay)
    began = time.monotonic()
    report = send_over(desk, relay.url, issue.id, SendOptions(concurrency=4, rate=20))
    took = time.monotonic() - began
    assert report.sent == 40
    # the bucket starts inside the send: 20 at once, the other 20 need a second more
    assert took >= (40 - 20) / 20 * 0.999
    taken = relay.times()
    assert taken[-1] - taken[0] >= (40 - 20) / 20 * 0.5  # the burst's receipt may lag
