"""Fetching a feed over HTTP as hostile input.

A feed host is a stranger to the desk: it may trickle its answer, send more than any feed
needs, or redirect to another scheme or to an address inside the newsroom's network. So a
fetch has one deadline for the whole answer (redirects included, enforced by closing the
socket when it passes, not per read), a byte cap, redirects to http(s) only, and connects
only to public addresses, checked on the address actually connected to, unless the host
is one that FetchLimits.private_hosts names (the site's own feed inside the network).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from newsletter.errors import FeedError
from newsletter.settings import Settings

USER_AGENT = "newsletter-desk/0.1 (newsroom newsletter feed import)"
ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"
MAX_FEED_BYTES = 20 * 1024 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class FetchLimits:
    deadline: float = 20.0  # seconds for the whole fetch, every redirect included
    max_bytes: int = MAX_FEED_BYTES
    private_hosts: frozenset[str] = frozenset()  # may be on loopback, private, link-local
    redirects: int = 5
    head_only: bool = False  # the first max_bytes and no more (an image's header), no error
    accept: str = ACCEPT

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchLimits:
        return cls(
            deadline=settings.feed_deadline.total_seconds(),
            private_hosts=frozenset(settings.feed_private_hosts),
        )


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit} bytes"


# IPv6 prefixes that carry an IPv4 address inside (NAT64, IPv4-compatible, translated):
# the address within is the one reached, so it is the one checked
_WRAPPING = tuple(
    ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96", "::ffff:0:0:0/96")
)


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    inner: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        inner += [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
        if ip.teredo:
            inner += list(ip.teredo)
        if any(ip in net for net in _WRAPPING):
            inner.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return all(a.is_global and not a.is_multicast for a in inner)


class _Fetch:
    """One fetch: the deadline, the socket of the hop under way, and the watchdog."""

    def __init__(self, source: str, limits: FetchLimits) -> None:
        self.source, self.limits = source, limits
        self.ends = time.monotonic() + limits.deadline
        self.sock: socket.socket | None = None
        self.expired = threading.Event()
        self.lock = threading.Lock()

    def fail(self, reason: str) -> FeedError:
        return FeedError(self.source, reason)

    def late(self) -> FeedError:
        return self.fail(f"no complete answer within {self.limits.deadline:g} s")

    def remaining(self) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise self.late()
        return left

    def expire(self) -> None:  # the watchdog: a blocked read returns when its socket closes
        with self.lock:
            self.expired.set()
            if self.sock is not None:
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def connect(self, host: str, port: int) -> socket.socket:
        allowed = host.lower().strip("[]") in self.limits.private_hosts
        found = self.resolve(host, port)
        refused, problem = [], ""
        for family, kind, proto, _name, where in found:
            if not allowed and not _public(str(where[0])):
                refused.append(str(where[0]))
                continue
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(self.remaining())
                sock.connect(where)
                peer = str(sock.getpeername()[0])
            except OSError as exc:
                sock.close()
                if self.expired.is_set() or isinstance(exc, TimeoutError):
                    raise self.late() from None
                problem = exc.strerror or str(exc)
                continue
            if not allowed and not _public(peer):  # the address actually connected to
                sock.close()
                refused.append(peer)
                continue
            return sock
        if refused and not problem:
            raise self.fail(
                f"{host} is at {refused[0]}, a loopback, private or link-local address: "
                f"refused (NEWSLETTER_FEED_PRIVATE_HOSTS={host} allows it)"
            )
        raise self.fail(f"cannot fetch: {problem or 'no address to connect to'}")

    def resolve(self, host: str, port: int) -> list[Any]:
        """The host's addresses within the deadline: a resolver that never answers cannot
        hold the fetch (the lookup runs aside, and is left to finish on its own)."""
        answer: list[Any] = []
        problem: list[BaseException] = []

        def look() -> None:
            try:
                answer.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
            except (OSError, UnicodeError) as exc:
                problem.append(exc)

        lookup = threading.Thread(target=look, name=f"resolve {host}", daemon=True)
        lookup.start()
        lookup.join(self.remaining())
        if lookup.is_alive() or self.expired.is_set():
            raise self.late()
        if problem:
            raise self.fail(f"cannot fetch: no address for {host}: {problem[0]}")
        return answer

    def headers(self) -> dict[str, str]:
        found = {"User-Agent": USER_AGENT, "Accept": self.limits.accept}
        found["Accept-Encoding"] = "identity"
        if self.limits.head_only:
            found["Range"] = f"bytes=0-{self.limits.max_bytes - 1}"
        return found

    def hop(self, url: str) -> tuple[int, str, str | None, bytes]:
        """(status, reason, Location, body) of one request."""
        try:
            parts = urlsplit(url)
            scheme, host = parts.scheme.lower(), parts.hostname
        except ValueError:
            raise self.fail(f"not a URL: {url[:200]!r}") from None
        if scheme not in ("http", "https") or not host:
            raise self.fail(f"only http(s) URLs can be fetched, not {url[:200]!r}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise self.fail(f"bad port in {url[:200]!r}") from None
        raw = self.connect(host, port)
        sock: socket.socket = raw
        conn: http.client.HTTPConnection | None = None
        response: http.client.HTTPResponse | None = None
        with self.lock:
            self.sock = raw  # the watchdog can close it during a trickled TLS handshake
        try:
            if scheme == "https":
                sock = ssl.create_default_context().wrap_socket(raw, server_hostname=host)
                conn = http.client.HTTPSConnection(host, port)
            else:
                conn = http.client.HTTPConnection(host, port)
            with self.lock:
                self.sock = sock
            if self.expired.is_set():
                raise self.late()
            conn.sock = sock
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request(
                "GET",
                target,
                headers=self.headers(),
            )
            response = conn.getresponse()
            if response.status in _REDIRECTS:
                return response.status, response.reason, response.getheader("Location"), b""
            declared = response.getheader("Content-Length") or ""
            cap, head_only = self.limits.max_bytes, self.limits.head_only
            if declared.isdigit() and int(declared) > cap and not head_only:
                raise self.fail(f"larger than {_size(cap)}")
            chunks, size = [], 0
            while chunk := response.read1(65536):
                size += len(chunk)
                if size > cap and head_only:
                    chunks.append(chunk[: len(chunk) - (size - cap)])
                    break
                if size > cap:
                    raise self.fail(f"larger than {_size(cap)}")
                chunks.append(chunk)
            if self.expired.is_set():
                raise self.late()
            return response.status, response.reason, None, b"".join(chunks)
        except FeedError:
            raise
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if self.expired.is_set() or isinstance(exc, TimeoutError):
                raise self.late() from None
            raise self.fail(f"cannot fetch: {exc!r}") from None
        finally:
            with self.lock:
                self.sock = None
            if response is not None:
                response.close()  # its file holds the socket open
            if conn is not None:
                conn.close()
            sock.close()


def fetch(source: str, limits: FetchLimits | None = None) -> bytes:
    """The body of an http(s) URL, within the limits; FeedError naming the URL otherwise."""
    limits = limits or FetchLimits()
    state = _Fetch(source, limits)
    watchdog = threading.Timer(limits.deadline, state.expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        url = source
        for _ in range(limits.redirects + 1):
            status, reason, location, body = state.hop(url)
            if status in _REDIRECTS:
                if not location:
                    raise state.fail(f"HTTP {status} {reason} without a Location")
                try:
                    url = urljoin(url, location.strip())
                except ValueError:  # "http://[bad/x": no address at all
                    raise state.fail(f"HTTP {status} to a malformed Location") from None
                continue
            if not 200 <= status < 300:
                raise state.fail(f"HTTP {status} {reason}")
            return body
        raise state.fail(f"more than {limits.redirects} redirects")
    finally:
        watchdog.cancel()
