"""Several SMTP relays behind one send: connections spread by weight, a failing relay is
taken out for a cool-down and its connections move to the others.

    NEWSLETTER_SMTP_URL=smtp://mta.example.org:25?weight=3,smtps://u:p@esp.example.com?rate=50

Each relay is an smtp:// or smtps:// URL; its query may set `weight` (default 1: its
share of the connections), `max_connections` (default: no cap) and `rate` (messages
per second through it, default: no cap). A RelayPool is shared by the connections of
one send: calling it opens one more connection (a PooledTransport).

`open_transport` and `open_transports` turn the settings into the transport (or the
factory of a send's connections): the outbox, one relay, or a pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from time import monotonic

from newsletter.errors import RelayUnavailable
from newsletter.settings.relays import RelayAddress, RelaySpec, relay_specs
from newsletter.transport.base import Envelope, Transport
from newsletter.transport.outbox import OutboxTransport
from newsletter.transport.rate import RateLimit
from newsletter.transport.smtp import SMTPTransport


def open_transport(smtp_url: str | None, outbox: Path) -> Transport:
    """The relay when one is configured, else the outbox folder."""
    if not smtp_url:
        return OutboxTransport(outbox)
    if "," in smtp_url or "?" in smtp_url:  # several relays, or options: a pool of its own
        return RelayPool(relay_specs(smtp_url))()
    return SMTPTransport(RelayAddress.parse(smtp_url))


def open_transports(
    smtp_url: str | None, outbox: Path, cooldown: timedelta, fail_after: int = 3
) -> Callable[[], Transport]:
    """The connections of one send: a factory called once per connection. Several relays
    (or one with options) share a RelayPool; one plain relay or the outbox as before."""
    if smtp_url and ("," in smtp_url or "?" in smtp_url):
        return RelayPool(relay_specs(smtp_url), cooldown, fail_after)
    return lambda: open_transport(smtp_url, outbox)


@dataclass
class _Relay:
    spec: RelaySpec
    connections: int = 0
    failures: int = 0  # in a row
    out_until: float = 0.0
    limit: RateLimit | None = None  # the relay's rate cap: one message every 1/rate s

    def __post_init__(self) -> None:
        if self.spec.rate:
            self.limit = RateLimit(self.spec.rate, burst=1)

    def pace(self) -> None:
        """Wait for this relay's rate, if it has one."""
        if self.limit is not None:
            self.limit.wait()


class RelayPool:
    """The relays of one send, shared by its connections (thread-safe)."""

    def __init__(
        self,
        specs: list[RelaySpec],
        cooldown: timedelta = timedelta(minutes=5),
        fail_after: int = 3,
        clock: Callable[[], float] = monotonic,
        timeout: float = 60.0,
    ) -> None:
        self.relays = [_Relay(spec) for spec in specs]
        self.cooldown, self.fail_after, self.clock = cooldown.total_seconds(), fail_after, clock
        self.timeout = timeout
        self.lock = threading.Lock()
        self.events: list[str] = []  # relays taken out and back, for the send's report
        self.last_error = ""

    @property
    def capacity(self) -> int | None:
        """How many connections the relays take at once; None when one has no cap."""
        caps = [r.spec.max_connections for r in self.relays]
        return None if 0 in caps else sum(caps)

    def __call__(self) -> PooledTransport:
        return PooledTransport(self)

    def assign(self, current: _Relay | None = None) -> _Relay:
        """The relay for a connection: among those in service with room, the one furthest
        below its share of connections (weight); RelayUnavailable when none is left."""
        with self.lock:
            if current is not None:
                current.connections -= 1
            now = self.clock()
            usable = [
                r
                for r in self.relays
                if r.out_until <= now
                and (not r.spec.max_connections or r.connections < r.spec.max_connections)
            ]
            if not usable:
                raise RelayUnavailable(f"every relay is out or full; last: {self.last_error}")
            chosen = min(usable, key=lambda r: (r.connections + 1) / r.spec.weight)
            chosen.connections += 1
            return chosen

    def release(self, relay: _Relay) -> None:
        with self.lock:
            relay.connections -= 1

    def failed(self, relay: _Relay, error: RelayUnavailable) -> bool:
        """Count a failure; True when the relay is now taken out for the cool-down."""
        with self.lock:
            self.last_error = f"{relay.spec.name}: {error}"
            relay.failures += 1
            if relay.failures < self.fail_after or relay.out_until > self.clock():
                return relay.out_until > self.clock()
            relay.failures, relay.out_until = 0, self.clock() + self.cooldown
            self.events.append(
                f"relay {relay.spec.name} taken out for {self.cooldown:.0f} s after "
                f"{self.fail_after} failures in a row: {error}"
            )
            return True

    def succeeded(self, relay: _Relay) -> None:
        if relay.failures:
            with self.lock:
                relay.failures = 0

    def out(self) -> list[str]:
        """Relays in their cool-down now."""
        now = self.clock()
        return [r.spec.name for r in self.relays if r.out_until > now]


class PooledTransport:
    """One connection of a send, to the relay the pool gave it; it moves to another relay
    when its own is taken out. A refusal before MAIL (RelayUnavailable) means nothing was
    handed over, so the same message is tried at once through the next relay."""

    wants_stuffed = True

    def __init__(self, pool: RelayPool) -> None:
        self.pool = pool
        self.relay: _Relay | None = None
        self.smtp: SMTPTransport | None = None

    def send(self, envelope: Envelope) -> str:
        while True:
            if self.relay is None or self.relay.out_until > self.pool.clock():
                self._move()
            assert self.relay is not None and self.smtp is not None
            self.relay.pace()
            try:
                reply = self.smtp.send(envelope)
            except RelayUnavailable as exc:
                if not self.pool.failed(self.relay, exc):
                    raise  # not out yet: the message waits, as with one relay
                continue
            self.pool.succeeded(self.relay)
            return reply

    def _move(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
            self.smtp = None
        try:
            self.relay = self.pool.assign(self.relay)
        except RelayUnavailable:
            self.relay = None
            raise
        self.smtp = SMTPTransport(self.relay.spec.address, timeout=self.pool.timeout)

    def close(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
            self.smtp = None
        if self.relay is not None:
            self.pool.release(self.relay)
            self.relay = None
