"""How a job's run ends: an outcome, a line for the log, and the exit code that cron and
systemd read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from newsletter.delivery.report import SendReport
from newsletter.models import Issue

# How a one-shot run ends, for cron and systemd: sent, nothing to do, or a failure.
EXIT_CODES = {
    "sent": 0,
    "dry-run": 0,
    "nothing": 3,
    "standby": 3,
    "not-due": 3,
    "alerted": 1,
    "failed": 1,
    "failures": 1,  # sent, but more readers failed than NEWSLETTER_FAILURE_ALERT allows
    "incomplete": 1,
    "stopped": 1,
    "paused": 5,
}


@dataclass(frozen=True)
class JobResult:
    outcome: str  # a key of EXIT_CODES
    message: str
    report: SendReport | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def as_dict(self) -> dict[str, Any]:
        report = self.report.as_dict() if self.report else None
        return {"outcome": self.outcome, "message": self.message, "report": report}

    def lines(self) -> list[str]:
        return [*(self.report.lines() if self.report else []), f"{self.outcome}: {self.message}"]


def send_outcome(issue: Issue, report: SendReport) -> JobResult:
    """The outcome of a send that ran (or of its dry run)."""
    if report.dry_run:
        return JobResult(
            "dry-run", f"issue {issue.id} would go to {report.audience} readers", report
        )
    if report.status == "sent" and report.with_failures:
        return JobResult(
            "failures",
            f"issue {issue.id} for {issue.send_date} finished with failures: {report.failed} of "
            f"{report.audience} readers failed ({_reasons(report)})",
            report,
        )
    if report.status == "sent":
        return JobResult("sent", f"issue {issue.id} for {issue.send_date} is sent", report)
    if report.paused:
        return JobResult("paused", f"issue {issue.id}: {report.paused}", report)
    if report.stopped:
        return JobResult("stopped", f"issue {issue.id}: stopped on request", report)
    if report.uncertain:
        return JobResult(
            "incomplete",
            f"issue {issue.id}: {report.uncertain} readers uncertain after a crash, not "
            f"re-sent (newsletter status {issue.id} lists them; send --resend-uncertain "
            "sends them)",
            report,
        )
    return JobResult(
        "incomplete",
        f"issue {issue.id}: {report.deferred} readers deferred; the next run continues",
        report,
    )


def _reasons(report: SendReport) -> str:
    return ", ".join(f"{r} {n}" for r, n in sorted(report.reasons.items())) or "no reason given"


def trouble_alert(issue: Issue, report: SendReport) -> tuple[str, str] | None:
    """The editors' alert for a send that paused or finished with failures: subject, body."""
    if report.paused:
        subject = f"Send paused: issue {issue.id} for {issue.send_date}"
        body = f"{report.paused}.\n\n" + "\n".join(report.lines()) + "\n"
    elif report.status == "sent" and report.with_failures:
        subject = f"Send finished with failures: issue {issue.id} for {issue.send_date}"
        body = "\n".join(report.lines()) + f"\n\nnewsletter status {issue.id} lists them.\n"
    else:
        return None
    return subject, body
