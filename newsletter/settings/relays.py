"""The relays NEWSLETTER_SMTP_URL names, as settings: parsed and checked here, used by
newsletter.transport (one relay: smtp; several, or options: pool)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from newsletter.errors import ConfigError


@dataclass(frozen=True)
class RelayAddress:
    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> RelayAddress:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError("NEWSLETTER_SMTP_URL", f"{url!r} is not smtp://host:port")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            implicit_tls=implicit,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


OPTIONS = ("weight", "max_connections", "rate")


@dataclass(frozen=True)
class RelaySpec:
    address: RelayAddress
    weight: int = 1
    max_connections: int = 0  # 0: no cap
    rate: float = 0.0  # messages per second, 0: no cap

    @property
    def name(self) -> str:
        return f"{self.address.host}:{self.address.port}"


def parse_relays(value: str) -> list[RelaySpec]:
    """A comma-separated list of relay URLs with their options; ValueError names the bad part."""
    specs = []
    for url in (one.strip() for one in value.split(",")):
        query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        unknown = sorted(set(query) - set(OPTIONS))
        if unknown:
            known = ", ".join(OPTIONS)
            raise ValueError(f"{url!r}: unknown option(s) {', '.join(unknown)}; known: {known}")
        try:
            weight, cap = int(query.get("weight", "1")), int(query.get("max_connections", "0"))
            rate = float(query.get("rate", "0"))
        except ValueError as exc:
            raise ValueError(f"{url!r}: {exc}") from None
        if weight < 1 or cap < 0 or rate < 0:
            raise ValueError(f"{url!r}: weight is 1 or more; max_connections, rate 0 or more")
        specs.append(RelaySpec(RelayAddress.parse(url.split("?")[0]), weight, cap, rate))
    return specs


def relay_specs(smtp_url: str) -> list[RelaySpec]:
    try:
        return parse_relays(smtp_url)
    except ValueError as exc:
        raise ConfigError("NEWSLETTER_SMTP_URL", str(exc)) from None
