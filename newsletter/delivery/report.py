"""What a send is asked to do (its options, built from the settings) and what it did
(its report: counts by outcome, the first failures, the uncertain readers)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from newsletter.settings import Settings


@dataclass(frozen=True)
class SendOptions:
    # the settings' own defaults, not a second copy of them
    concurrency: int = Settings.concurrency
    rate: float = Settings.rate  # messages per second, 0 for no cap
    rate_per_hour: int = Settings.rate_per_hour
    pause_after: int = Settings.pause_after  # consecutive relay failures that pause the send
    failure_alert: float = Settings.failure_alert  # per cent failed that makes a send troubled
    max_attempts: int = 5
    retry_base: timedelta = timedelta(minutes=1)
    wait_for_retries: timedelta = timedelta(0)  # stay this long for deferred rows to come due
    batch: int = 500

    @classmethod
    def from_settings(cls, settings: Settings) -> SendOptions:
        return cls(
            concurrency=settings.concurrency,
            rate=settings.rate,
            rate_per_hour=settings.rate_per_hour,
            pause_after=settings.pause_after,
            failure_alert=settings.failure_alert,
        )


@dataclass
class SendReport:
    issue_id: int
    audience: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    already_sent: int = 0
    uncertain: int = 0
    dry_run: bool = False
    seconds: float = 0.0
    status: str = ""
    failures: list[str] = field(default_factory=list)
    paused: str | None = None
    stopped: bool = False
    preflight: dict[str, Any] | None = None
    uncertain_readers: list[str] = field(default_factory=list)
    relays: list[str] = field(default_factory=list)  # relays taken out during the send
    failure_alert: float = 0.0  # per cent: above it a finished send "finished with failures"
    reasons: dict[str, int] = field(default_factory=dict)  # failed and deferred, by reason

    @property
    def with_failures(self) -> bool:
        """Finished, but more of the audience failed than NEWSLETTER_FAILURE_ALERT allows."""
        share = 100 * self.failed / self.audience if self.audience else 0.0
        return bool(self.failure_alert) and share > self.failure_alert

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": self.rate, "with_failures": self.with_failures}

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def lines(self) -> list[str]:
        head = "dry run: nothing sent" if self.dry_run else f"issue {self.issue_id}: {self.status}"
        out = [
            head,
            f"audience {self.audience}: sent now {self.sent}, sent before {self.already_sent}, "
            f"failed {self.failed}, deferred {self.deferred}, skipped {self.skipped}, "
            f"uncertain {self.uncertain}",
            f"{self.seconds:.2f} s, {self.rate:.0f} messages/s",
        ]
        if self.reasons:
            out.append("reasons: " + ", ".join(f"{r} {n}" for r, n in sorted(self.reasons.items())))
        out += [f"failure: {f}" for f in self.failures[:5]]
        out += [
            f"uncertain: {r} (not re-sent; --resend-uncertain sends)"
            for r in self.uncertain_readers[:20]
        ]
        out += self.relays
        if self.paused:
            out.append(f"paused: {self.paused} (run send again to resume)")
        if self.stopped:
            out.append("stopped on request; run send again to resume")
        if self.with_failures:
            share = 100 * self.failed / self.audience
            out.append(
                f"finished with failures: {self.failed} of {self.audience} readers failed "
                f"({share:.1f} %, more than NEWSLETTER_FAILURE_ALERT {self.failure_alert:g} %)"
            )
        return out
